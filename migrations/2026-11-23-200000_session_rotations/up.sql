-- Refresh tokens already exchanged for new ones, by SHA-256: presenting one again means it
-- was copied, and its session is revoked (src/auth/sessions.rs). Internal bookkeeping, not a
-- catalog entity: no API reads it.
CREATE TABLE "session_rotations" (
    "token_hash" text PRIMARY KEY,
    "tenant_id" uuid NOT NULL,
    "session_id" uuid NOT NULL REFERENCES "sessions" ("id") ON DELETE CASCADE,
    "rotated_at" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX "session_rotations_session_id_idx" ON "session_rotations" ("session_id");
