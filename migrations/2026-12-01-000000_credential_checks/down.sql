DROP FUNCTION IF EXISTS gateway_enter(uuid, uuid, bigint, uuid);
REVOKE SELECT ("id", "tenant_id", "revoked_at", "expires_at") ON "sessions" FROM gateway_definer;
REVOKE SELECT ("id", "tenant_id", "status") ON "users" FROM gateway_definer;
DROP INDEX IF EXISTS "users_tenant_id_lower_email_key";
DROP TABLE IF EXISTS "operator_token_generations";
