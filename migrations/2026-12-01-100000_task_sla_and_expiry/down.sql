DROP FUNCTION gateway_delete_expired_notifications(integer);
DROP FUNCTION gateway_escalate_overdue_tasks(integer);
REVOKE SELECT, DELETE ON "notifications" FROM gateway_definer;
DROP POLICY "expiry_deletes" ON "notifications";
DROP POLICY "expiry_reads" ON "notifications";
REVOKE UPDATE ("status", "updated_at") ON "tasks" FROM gateway_definer;
REVOKE SELECT ON "tasks" FROM gateway_definer;
DROP POLICY "sla_sweeper_escalates" ON "tasks";
DROP POLICY "sla_sweeper_reads" ON "tasks";
