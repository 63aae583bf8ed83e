-- What a verified token alone cannot tell: whether its tenant or user has been suspended, or
-- an operator token revoked, since it was issued. Every request transaction enters its tenant
-- through gateway_enter, which sets the row-level-security tenant and answers these in the
-- same round trip. See docs/database-roles.md.

-- Operator tokens (`gateway token`) carry their tenant's generation when issued;
-- `gateway revoke-tokens` moves it on, and older tokens stop working at their next request.
CREATE TABLE "operator_token_generations" (
    "tenant_id" uuid PRIMARY KEY REFERENCES "tenants" ("id") ON DELETE CASCADE,
    "generation" bigint NOT NULL DEFAULT 0
);
ALTER TABLE "operator_token_generations" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "operator_token_generations" FORCE ROW LEVEL SECURITY;
CREATE POLICY "tenant_isolation" ON "operator_token_generations"
    USING ("tenant_id" = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK ("tenant_id" = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));
-- Requests only read it, through gateway_enter.
REVOKE ALL ON "operator_token_generations" FROM gateway_app;

-- One address is one account, whatever its case: `ADMIN@x` cannot shadow `admin@x`.
CREATE UNIQUE INDEX "users_tenant_id_lower_email_key" ON "users" ("tenant_id", lower("email"));

-- Returns 'ok', or what refuses the caller: 'tenant' (suspended or deleted), 'user'
-- (inactive), 'revoked' (an operator token of an older generation), 'signed_out' (the sign-in
-- session of the token was ended: logout, a password change, a reused refresh token, or it
-- expired). A token naming a tenant or user that does not exist sees nothing, as before.
CREATE FUNCTION gateway_enter(tenant uuid, caller uuid, operator_generation bigint, session uuid)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
DECLARE
    tenant_status text;
    user_status text;
    current_generation bigint;
    session_open boolean;
BEGIN
    -- Transaction-local, and not restored on return: only search_path is set by the function.
    PERFORM set_config('app.tenant_id', tenant::text, true);
    SELECT t.status::text INTO tenant_status FROM public.tenants t WHERE t.id = tenant;
    IF tenant_status IS NOT NULL AND tenant_status <> 'ACTIVE' THEN
        RETURN 'tenant';
    END IF;
    SELECT u.status::text INTO user_status FROM public.users u
        WHERE u.tenant_id = tenant AND u.id = caller;
    IF user_status IS NOT NULL AND user_status <> 'ACTIVE' THEN
        RETURN 'user';
    END IF;
    IF operator_generation IS NOT NULL THEN
        SELECT g.generation INTO current_generation FROM public.operator_token_generations g
            WHERE g.tenant_id = tenant;
        IF coalesce(current_generation, 0) > operator_generation THEN
            RETURN 'revoked';
        END IF;
    END IF;
    IF session IS NOT NULL THEN
        SELECT s.revoked_at IS NULL AND s.expires_at > now() INTO session_open
            FROM public.sessions s WHERE s.tenant_id = tenant AND s.id = session;
        IF session_open IS DISTINCT FROM true THEN
            RETURN 'signed_out';
        END IF;
    END IF;
    RETURN 'ok';
END
$$;

GRANT SELECT ("id", "tenant_id", "status") ON "users" TO gateway_definer;
GRANT SELECT ON "operator_token_generations" TO gateway_definer;
GRANT SELECT ("id", "tenant_id", "revoked_at", "expires_at") ON "sessions" TO gateway_definer;
ALTER FUNCTION gateway_enter(uuid, uuid, bigint, uuid) OWNER TO gateway_definer;
REVOKE ALL ON FUNCTION gateway_enter(uuid, uuid, bigint, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gateway_enter(uuid, uuid, bigint, uuid) TO gateway_app;
