-- The two sweeps every instance runs, across tenants: escalating tasks past their SLA deadline
-- (seed 003) and removing expired notifications (seed 000). They run as gateway_definer
-- through SECURITY DEFINER functions whose policies let them see and change only what they
-- sweep; the serving role only calls them.

-- Tasks past their deadline and still open, escalated once: a task another sweep has locked
-- is skipped (SKIP LOCKED) and, once escalated, no longer matches.
CREATE POLICY "sla_sweeper_reads" ON "tasks" FOR SELECT TO gateway_definer
    USING ("sla_deadline" IS NOT NULL);
CREATE POLICY "sla_sweeper_escalates" ON "tasks" FOR UPDATE TO gateway_definer
    USING ("sla_deadline" < now() AND "status" IN ('CREATED', 'ASSIGNED', 'CLAIMED'))
    WITH CHECK ("status" = 'ESCALATED');
GRANT SELECT, UPDATE ("status", "updated_at") ON "tasks" TO gateway_definer;

CREATE FUNCTION gateway_escalate_overdue_tasks(max_rows integer)
    RETURNS TABLE (tenant_id uuid, id uuid)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        UPDATE public.tasks t SET status = 'ESCALATED', updated_at = now()
        WHERE t.id IN (
            SELECT o.id FROM public.tasks o
            WHERE o.sla_deadline < now() AND o.status IN ('CREATED', 'ASSIGNED', 'CLAIMED')
            ORDER BY o.sla_deadline
            LIMIT greatest(least(max_rows, 1000), 0)
            FOR UPDATE SKIP LOCKED)
        RETURNING t.tenant_id, t.id
    $$;

CREATE POLICY "expiry_reads" ON "notifications" FOR SELECT TO gateway_definer
    USING ("expires_at" < now());
CREATE POLICY "expiry_deletes" ON "notifications" FOR DELETE TO gateway_definer
    USING ("expires_at" < now());
GRANT SELECT, DELETE ON "notifications" TO gateway_definer;

CREATE FUNCTION gateway_delete_expired_notifications(max_rows integer) RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        WITH gone AS (
            DELETE FROM public.notifications n
            WHERE n.id IN (
                SELECT e.id FROM public.notifications e
                WHERE e.expires_at < now()
                LIMIT greatest(least(max_rows, 10000), 0))
            RETURNING 1)
        SELECT count(*) FROM gone
    $$;

ALTER FUNCTION gateway_escalate_overdue_tasks(integer) OWNER TO gateway_definer;
ALTER FUNCTION gateway_delete_expired_notifications(integer) OWNER TO gateway_definer;
REVOKE ALL ON FUNCTION gateway_escalate_overdue_tasks(integer),
    gateway_delete_expired_notifications(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gateway_escalate_overdue_tasks(integer),
    gateway_delete_expired_notifications(integer) TO gateway_app;
