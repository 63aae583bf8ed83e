-- What lets a gateway skip gateway_enter's lookups for a caller it has already admitted,
-- without ever admitting one that gateway_enter would refuse. See docs/database-roles.md.
--
-- gateway_enter's verdict depends on four kinds of rows: the tenant's status, the user's
-- status, the tenant's operator-token generation and the token's sign-in session. Every change
-- to one of them moves this counter on, in the changing transaction. A gateway remembers the
-- counter's value with each caller gateway_enter admitted; a request's entering statement
-- reads the counter in its own snapshot and runs gateway_enter only when it has moved (or the
-- caller is new): an unchanged counter means no such row changed since the admission.
CREATE TABLE "gateway_credential_epoch" (
    "n" bigint NOT NULL
);
INSERT INTO "gateway_credential_epoch" ("n") VALUES (0);
-- Requests read it; only the triggers below write it.
REVOKE ALL ON "gateway_credential_epoch" FROM gateway_app;
GRANT SELECT ON "gateway_credential_epoch" TO gateway_app;
GRANT SELECT, UPDATE ON "gateway_credential_epoch" TO gateway_definer;

CREATE FUNCTION gateway_credentials_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
BEGIN
    UPDATE public.gateway_credential_epoch SET n = n + 1;
    RETURN NULL;
END
$$;
ALTER FUNCTION gateway_credentials_changed() OWNER TO gateway_definer;
REVOKE ALL ON FUNCTION gateway_credentials_changed() FROM PUBLIC;

-- Updates: only those that change what gateway_enter reads (signing in, `last_active_at`
-- and profile edits leave the counter alone). Inserts, deletes and truncates: once per
-- statement; a tenant or user inserted under an id a token already names changes its verdict.
-- Not inserted sessions: a session's id is drawn when it is inserted, and only then is a
-- token issued for it, so no admission can have named it before.
CREATE TRIGGER "gateway_credentials_changed" AFTER UPDATE ON "tenants" FOR EACH ROW
    WHEN (OLD."status" IS DISTINCT FROM NEW."status" OR OLD."id" IS DISTINCT FROM NEW."id")
    EXECUTE FUNCTION gateway_credentials_changed();
CREATE TRIGGER "gateway_credentials_added_or_removed" AFTER INSERT OR DELETE OR TRUNCATE ON "tenants"
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_credentials_changed();

CREATE TRIGGER "gateway_credentials_changed" AFTER UPDATE ON "users" FOR EACH ROW
    WHEN (OLD."status" IS DISTINCT FROM NEW."status" OR OLD."id" IS DISTINCT FROM NEW."id"
          OR OLD."tenant_id" IS DISTINCT FROM NEW."tenant_id")
    EXECUTE FUNCTION gateway_credentials_changed();
CREATE TRIGGER "gateway_credentials_added_or_removed" AFTER INSERT OR DELETE OR TRUNCATE ON "users"
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_credentials_changed();

CREATE TRIGGER "gateway_credentials_changed" AFTER UPDATE ON "sessions" FOR EACH ROW
    WHEN (OLD."revoked_at" IS DISTINCT FROM NEW."revoked_at"
          OR OLD."expires_at" IS DISTINCT FROM NEW."expires_at"
          OR OLD."id" IS DISTINCT FROM NEW."id" OR OLD."tenant_id" IS DISTINCT FROM NEW."tenant_id")
    EXECUTE FUNCTION gateway_credentials_changed();
CREATE TRIGGER "gateway_credentials_removed" AFTER DELETE OR TRUNCATE ON "sessions"
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_credentials_changed();

CREATE TRIGGER "gateway_credentials_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON "operator_token_generations"
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_credentials_changed();
