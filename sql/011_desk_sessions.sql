-- Review desk sessions: a reviewer signs in with their bearer token once and gets a session
-- cookie. Only the digest of the session id is stored (like the reviewer tokens), so a copy of
-- this table cannot be replayed as cookies. Each session carries its CSRF token; a session ends
-- by sign-out (ended_at) or by expiry (expires_at), and a disabled reviewer's sessions stop
-- working at once (the lookup joins reviewers).
CREATE TABLE desk_sessions (
    id             BIGSERIAL PRIMARY KEY,
    session_sha256 CHAR(64) NOT NULL UNIQUE,
    reviewer_id    INTEGER NOT NULL REFERENCES reviewers (id),
    csrf_token     VARCHAR(64) NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at     TIMESTAMPTZ NOT NULL,
    last_seen_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    ended_at       TIMESTAMPTZ
);
CREATE INDEX idx_desk_sessions_reviewer ON desk_sessions (reviewer_id);
CREATE INDEX idx_desk_sessions_expires_at ON desk_sessions (expires_at);
