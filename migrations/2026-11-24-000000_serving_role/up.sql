-- The database roles the gateway serves through, and row-level security on the tables that
-- are not catalog entities (the catalog's tables get theirs in the generated migration that
-- follows). See docs/database-roles.md.
--
-- gateway_app: what serving connections act as. Neither SUPERUSER nor BYPASSRLS, so every
--   tenant policy applies to it. NOLOGIN here: the private cluster lets it log in, other
--   deployments grant it to their own login role (GRANT gateway_app TO ...).
-- gateway_definer: owns the few SECURITY DEFINER functions that must read across tenants
--   (the change listener, the tenant lookup of signing in); its policies cover only those reads.
-- Roles are per cluster, so they may exist already (another database of the same cluster).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gateway_app') THEN
        CREATE ROLE gateway_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gateway_definer') THEN
        CREATE ROLE gateway_definer NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;
-- A non-superuser owner (CREATEROLE) must be a member to hand functions to gateway_definer.
GRANT gateway_definer TO CURRENT_USER;

GRANT USAGE ON SCHEMA public TO gateway_app, gateway_definer;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO gateway_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO gateway_app;
REVOKE ALL ON "__diesel_schema_migrations" FROM gateway_app;
-- Tables of later migrations (run by the same owner) are the serving role's too.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO gateway_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO gateway_app;

-- The outbox: a tenant sees its own events and those of global entities.
ALTER TABLE "change_events" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "change_events" FORCE ROW LEVEL SECURITY;
CREATE POLICY "tenant_isolation" ON "change_events"
    USING ("tenant_id" IS NULL OR "tenant_id" = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK ("tenant_id" IS NULL OR "tenant_id" = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));
CREATE POLICY "change_listener" ON "change_events" FOR SELECT TO gateway_definer USING (true);
CREATE POLICY "change_retention" ON "change_events" FOR DELETE TO gateway_definer USING (true);
GRANT SELECT, DELETE ON "change_events" TO gateway_definer;
GRANT SELECT, UPDATE ON "change_event_horizon" TO gateway_definer;

ALTER TABLE "session_rotations" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "session_rotations" FORCE ROW LEVEL SECURITY;
CREATE POLICY "tenant_isolation" ON "session_rotations"
    USING ("tenant_id" = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK ("tenant_id" = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));

-- Signing in names a tenant by slug before there is a tenant to scope by.
CREATE POLICY "sign_in_lookup" ON "tenants" FOR SELECT TO gateway_definer USING (true);
GRANT SELECT ON "tenants" TO gateway_definer;

-- STABLE: they read with the calling statement's snapshot, which the listener's gap
-- detection compares against.
CREATE FUNCTION gateway_outbox_max_seq() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$ SELECT coalesce(max(seq), 0) FROM public.change_events $$;

CREATE FUNCTION gateway_outbox_after(after_seq bigint, max_rows integer)
    RETURNS TABLE (seq bigint, tenant_id uuid, entity text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$ SELECT e.seq, e.tenant_id, e.entity FROM public.change_events e
          WHERE e.seq > after_seq ORDER BY e.seq LIMIT max_rows $$;

-- Drops events older than `older_than_secs` up to `upto`, remembering how far.
CREATE FUNCTION gateway_outbox_prune(older_than_secs bigint, upto bigint) RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
        WITH gone AS (
            DELETE FROM public.change_events
            WHERE created_at < now() - make_interval(secs => older_than_secs) AND seq <= upto
            RETURNING seq
        )
        UPDATE public.change_event_horizon
        SET pruned_upto = greatest(pruned_upto, (SELECT max(seq) FROM gone))
        WHERE EXISTS (SELECT 1 FROM gone)
    $$;

-- Only a tenant's id and whether it is active: nothing else of another tenant's row.
CREATE FUNCTION gateway_tenant_for_sign_in(tenant_slug text)
    RETURNS TABLE (id uuid, active boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$ SELECT t.id, t.status = 'ACTIVE' FROM public.tenants t WHERE t.slug = tenant_slug $$;

ALTER FUNCTION gateway_outbox_max_seq() OWNER TO gateway_definer;
ALTER FUNCTION gateway_outbox_after(bigint, integer) OWNER TO gateway_definer;
ALTER FUNCTION gateway_outbox_prune(bigint, bigint) OWNER TO gateway_definer;
ALTER FUNCTION gateway_tenant_for_sign_in(text) OWNER TO gateway_definer;
REVOKE ALL ON FUNCTION gateway_outbox_max_seq(), gateway_outbox_after(bigint, integer),
    gateway_outbox_prune(bigint, bigint), gateway_tenant_for_sign_in(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gateway_outbox_max_seq(), gateway_outbox_after(bigint, integer),
    gateway_outbox_prune(bigint, bigint), gateway_tenant_for_sign_in(text) TO gateway_app;
