-- The outbox of change events: every mutation writes one row per changed row in its own
-- transaction (so a rolled-back mutation emits nothing) and wakes the gateway instances with
-- NOTIFY (no payload beyond the channel: row data never travels through NOTIFY).
CREATE TABLE "change_events" (
    "seq" bigserial PRIMARY KEY,
    -- null for global entities, whose changes every tenant may see
    "tenant_id" uuid,
    "entity" text NOT NULL,
    "row_id" uuid NOT NULL,
    "op" text NOT NULL CHECK ("op" IN ('CREATED', 'UPDATED', 'DELETED')),
    -- the row after the change (and as it was, on delete), by column name
    "node" jsonb NOT NULL,
    -- the row before an update or delete
    "previous" jsonb,
    "created_at" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX "change_events_created_at_idx" ON "change_events" ("created_at");

-- Events up to this sequence number have been pruned: a cursor below it cannot be resumed
-- without a gap.
CREATE TABLE "change_event_horizon" (
    "id" boolean PRIMARY KEY DEFAULT TRUE CHECK ("id"),
    "pruned_upto" bigint NOT NULL DEFAULT 0
);
INSERT INTO "change_event_horizon" DEFAULT VALUES;
