DROP TRIGGER IF EXISTS "gateway_credentials_changed" ON "operator_token_generations";
DROP TRIGGER IF EXISTS "gateway_credentials_removed" ON "sessions";
DROP TRIGGER IF EXISTS "gateway_credentials_changed" ON "sessions";
DROP TRIGGER IF EXISTS "gateway_credentials_added_or_removed" ON "users";
DROP TRIGGER IF EXISTS "gateway_credentials_changed" ON "users";
DROP TRIGGER IF EXISTS "gateway_credentials_added_or_removed" ON "tenants";
DROP TRIGGER IF EXISTS "gateway_credentials_changed" ON "tenants";
DROP FUNCTION IF EXISTS gateway_credentials_changed();
DROP TABLE IF EXISTS "gateway_credential_epoch";
