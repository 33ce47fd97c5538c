-- Core platform state. Every table lives in the dispute_platform schema, so Dagster's own
-- tables (same server, same database) never collide with ours and `setup --reset` can drop
-- exactly what the platform owns.

-- One row per dispute (case). The seed's columns are kept; run_id is the dispute's workflow id
-- (stable across the several Dagster runs a dispute goes through).
CREATE TABLE workflow_states (
    id               SERIAL PRIMARY KEY,
    run_id           UUID NOT NULL UNIQUE,
    case_id          VARCHAR(255) NOT NULL UNIQUE,
    customer_id      VARCHAR(255),
    status           VARCHAR(50) NOT NULL,
    current_step     VARCHAR(100) NOT NULL,
    status_reason    TEXT,
    dispute_type     VARCHAR(64),
    segment          VARCHAR(32),
    disputed_amount  NUMERIC(14, 2),
    currency         CHAR(3),
    crm_data         JSONB,
    billing_data     JSONB,
    payment_data     JSONB,
    validation       JSONB,
    resolution_proposal JSONB,
    proposal_version INTEGER NOT NULL DEFAULT 0,
    human_review_data JSONB,
    final_resolution JSONB,
    llm_cost         DECIMAL(10, 6) NOT NULL DEFAULT 0,
    total_cost       DECIMAL(10, 6) NOT NULL DEFAULT 0,
    cost_breakdown   JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at     TIMESTAMPTZ
);
CREATE INDEX idx_workflow_states_run_id ON workflow_states (run_id);
CREATE INDEX idx_workflow_states_case_id ON workflow_states (case_id);
CREATE INDEX idx_workflow_states_status ON workflow_states (status);
CREATE INDEX idx_workflow_states_current_step ON workflow_states (current_step);
CREATE INDEX idx_workflow_states_created_at ON workflow_states (created_at);

-- Every accepted SQS event. Redelivery of the same event is a no-op thanks to the unique key.
CREATE TABLE dispute_events (
    id          BIGSERIAL PRIMARY KEY,
    case_id     VARCHAR(64) NOT NULL,
    event_id    VARCHAR(128) NOT NULL,
    customer_id VARCHAR(64),
    body        JSONB NOT NULL,
    message_id  VARCHAR(128),
    source_queue TEXT,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (case_id, event_id)
);
CREATE INDEX idx_dispute_events_received_at ON dispute_events (received_at);

-- Bodies that could not become events, with why. The body is kept as text (NUL bytes escaped)
-- together with the digest of the raw bytes, so nothing is lost and a fixed producer can replay.
CREATE TABLE rejected_events (
    id          BIGSERIAL PRIMARY KEY,
    body        TEXT NOT NULL,
    body_sha256 CHAR(64) NOT NULL,
    body_bytes  INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    message_id  VARCHAR(128),
    source_queue TEXT,
    dead_lettered BOOLEAN NOT NULL DEFAULT FALSE,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (body_sha256, message_id)
);
CREATE INDEX idx_rejected_events_received_at ON rejected_events (received_at);

-- Append-only audit trail: who did what to which dispute, when, from which Dagster run.
CREATE TABLE audit_log (
    id             BIGSERIAL PRIMARY KEY,
    case_id        VARCHAR(64) NOT NULL,
    step           VARCHAR(100) NOT NULL,
    event          VARCHAR(100) NOT NULL,
    actor          VARCHAR(255) NOT NULL DEFAULT 'system',
    details        JSONB NOT NULL DEFAULT '{}'::jsonb,
    dagster_run_id VARCHAR(64),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_audit_log_case_id ON audit_log (case_id, id);

CREATE FUNCTION forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
