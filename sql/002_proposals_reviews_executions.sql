-- Proposals, their cap checks, reviewers and their decisions, executions, and the model cache.

CREATE TABLE proposals (
    id             BIGSERIAL PRIMARY KEY,
    case_id        VARCHAR(64) NOT NULL,
    version        INTEGER NOT NULL,
    status         VARCHAR(32) NOT NULL,   -- pending_review | blocked | superseded | decided
    proposal       JSONB NOT NULL,
    action         VARCHAR(32) NOT NULL,
    amount         NUMERIC(14, 2) NOT NULL,
    currency       CHAR(3) NOT NULL,
    confidence     REAL NOT NULL,
    provider       VARCHAR(64) NOT NULL,
    model          VARCHAR(128) NOT NULL,
    prompt_version VARCHAR(64) NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cost_usd       NUMERIC(12, 8) NOT NULL,
    cache_hit      BOOLEAN NOT NULL DEFAULT FALSE,
    latency_ms     INTEGER NOT NULL DEFAULT 0,
    flags          JSONB NOT NULL DEFAULT '[]'::jsonb,
    dagster_run_id VARCHAR(64),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (case_id, version)
);
CREATE INDEX idx_proposals_status ON proposals (status, created_at);

-- Results of the blocking cap checks, per proposal version. Execution requires a passing row for
-- every cap: a proposal whose checks never ran can not be executed either (fail closed).
CREATE TABLE check_results (
    case_id          VARCHAR(64) NOT NULL,
    proposal_version INTEGER NOT NULL,
    check_name       VARCHAR(64) NOT NULL,
    passed           BOOLEAN NOT NULL,
    figure           NUMERIC(20, 8) NOT NULL,
    cap              NUMERIC(20, 8) NOT NULL,
    dagster_run_id   VARCHAR(64),
    evaluated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, proposal_version, check_name)
);

CREATE TABLE reviewers (
    id           SERIAL PRIMARY KEY,
    name         VARCHAR(255) NOT NULL UNIQUE,
    email        VARCHAR(255),
    token_sha256 CHAR(64) NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    disabled_at  TIMESTAMPTZ
);

-- Append-only. A reviewer answers one proposal version once; the four-eyes rule counts distinct
-- reviewers per version.
CREATE TABLE review_decisions (
    id               BIGSERIAL PRIMARY KEY,
    case_id          VARCHAR(64) NOT NULL,
    proposal_version INTEGER NOT NULL,
    decision         VARCHAR(16) NOT NULL CHECK (decision IN ('approved', 'rejected', 'modified')),
    reviewer         VARCHAR(255) NOT NULL,
    comments         TEXT NOT NULL DEFAULT '',
    modified_resolution JSONB,
    effective_action VARCHAR(32) NOT NULL,
    effective_amount NUMERIC(14, 2) NOT NULL,
    source           VARCHAR(16) NOT NULL,   -- api | launchpad
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (case_id, proposal_version, reviewer)
);
CREATE INDEX idx_review_decisions_case ON review_decisions (case_id, proposal_version);
CREATE TRIGGER review_decisions_append_only BEFORE UPDATE OR DELETE ON review_decisions
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

-- Money moves at most once per idempotency key (derived from the dispute and the decision).
CREATE TABLE executions (
    id               BIGSERIAL PRIMARY KEY,
    case_id          VARCHAR(64) NOT NULL,
    proposal_version INTEGER NOT NULL,
    decision_id      BIGINT NOT NULL REFERENCES review_decisions (id),
    idempotency_key  VARCHAR(128) NOT NULL UNIQUE,
    action           VARCHAR(32) NOT NULL,
    amount           NUMERIC(14, 2) NOT NULL,
    currency         CHAR(3) NOT NULL,
    status           VARCHAR(16) NOT NULL,   -- started | succeeded | failed | noop
    provider_ref     VARCHAR(128),
    error            TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_executions_case ON executions (case_id);

-- Model replies keyed on a digest of the prompt (the case's essence, no timestamps). A new
-- resolution invalidates the entries of its dispute type: their retrieved precedent may change.
CREATE TABLE proposal_cache (
    cache_key   CHAR(64) PRIMARY KEY,
    case_id     VARCHAR(64) NOT NULL,
    dispute_type VARCHAR(64) NOT NULL,
    model       VARCHAR(128) NOT NULL,
    reply       JSONB NOT NULL,
    hits        INTEGER NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_proposal_cache_type ON proposal_cache (dispute_type);
