-- Money moves exactly once, decisions are made by reviewer records, and a launchpad decision
-- carries a single-use ticket. See README "Money guarantees" for how each rule is tested.

-- Reviewers: a name is one person whatever its case ("mallory" and "Mallory" are the same).
CREATE UNIQUE INDEX reviewers_name_any_case ON reviewers (lower(name));
ALTER TABLE reviewers ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'system'));
ALTER TABLE reviewers ADD COLUMN token_rotated_at TIMESTAMPTZ;

-- Decisions reference the reviewer record (the name column stays as the name at the time). Rows
-- written before this migration are matched by name; new rows must name a record.
ALTER TABLE review_decisions ADD COLUMN reviewer_id INTEGER REFERENCES reviewers (id);
ALTER TABLE review_decisions DISABLE TRIGGER review_decisions_append_only;
UPDATE review_decisions d SET reviewer_id = r.id FROM reviewers r WHERE lower(r.name) = lower(d.reviewer);
ALTER TABLE review_decisions ENABLE TRIGGER review_decisions_append_only;
ALTER TABLE review_decisions ADD CONSTRAINT review_decisions_reviewer_record CHECK (reviewer_id IS NOT NULL) NOT VALID;
CREATE UNIQUE INDEX review_decisions_once_per_reviewer ON review_decisions (case_id, proposal_version, reviewer_id);
CREATE INDEX idx_review_decisions_reviewer ON review_decisions (reviewer_id);

-- Launchpad decisions: Dagster keeps run config in plain text, so the launchpad carries a ticket
-- that an authenticated reviewer obtained from the endpoint: short-lived, single use, bound to one
-- dispute's proposal version. Only its digest is stored.
CREATE TABLE decision_tickets (
    id               BIGSERIAL PRIMARY KEY,
    ticket_sha256    CHAR(64) NOT NULL UNIQUE,
    reviewer_id      INTEGER NOT NULL REFERENCES reviewers (id),
    case_id          VARCHAR(64) NOT NULL,
    proposal_version INTEGER NOT NULL,
    issued_via       VARCHAR(16) NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    used_at          TIMESTAMPTZ,
    used_by_run      VARCHAR(64),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_decision_tickets_reviewer ON decision_tickets (reviewer_id, created_at);

-- Executions: at most one money movement per dispute, enforced here. A row is one movement
-- (every attempt at it reuses the row and its idempotency key); a movement the provider refused
-- is 'failed' and frees the dispute for a later movement under a new key.
ALTER TABLE executions ADD COLUMN charge_id VARCHAR(64);
ALTER TABLE executions ADD COLUMN customer_id VARCHAR(64);
ALTER TABLE executions ADD COLUMN reconciled BOOLEAN NOT NULL DEFAULT FALSE;
CREATE UNIQUE INDEX executions_one_movement_per_case ON executions (case_id)
    WHERE status IN ('started', 'succeeded', 'noop');
CREATE INDEX idx_executions_charge ON executions (charge_id) WHERE charge_id IS NOT NULL;

-- A recorded outcome is never overwritten, and no execution is ever deleted.
CREATE FUNCTION executions_keep_outcomes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'executions are never deleted (%)', OLD.idempotency_key;
    END IF;
    IF OLD.status IN ('succeeded', 'noop', 'failed') AND (
        NEW.status IS DISTINCT FROM OLD.status OR NEW.provider_ref IS DISTINCT FROM OLD.provider_ref
        OR NEW.amount IS DISTINCT FROM OLD.amount OR NEW.action IS DISTINCT FROM OLD.action
        OR NEW.idempotency_key IS DISTINCT FROM OLD.idempotency_key) THEN
        RAISE EXCEPTION 'execution % is %: a recorded outcome is never overwritten', OLD.idempotency_key, OLD.status;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER executions_keep_outcomes BEFORE UPDATE OR DELETE ON executions
    FOR EACH ROW EXECUTE FUNCTION executions_keep_outcomes();

-- The sandbox providers behave like Stripe and Zuora: they remember an idempotency key for a
-- while (not forever), and they can be asked what exists for a dispute (our case id travels
-- with every refund and credit, like Stripe metadata or a Zuora reference).
ALTER TABLE sandbox_refunds DROP CONSTRAINT sandbox_refunds_idempotency_key_key;
ALTER TABLE sandbox_credits DROP CONSTRAINT sandbox_credits_idempotency_key_key;
ALTER TABLE sandbox_refunds ADD COLUMN case_id VARCHAR(64);
ALTER TABLE sandbox_credits ADD COLUMN case_id VARCHAR(64);
CREATE INDEX idx_sandbox_refunds_key ON sandbox_refunds (idempotency_key, created_at);
CREATE INDEX idx_sandbox_credits_key ON sandbox_credits (idempotency_key, created_at);
CREATE INDEX idx_sandbox_refunds_case ON sandbox_refunds (case_id);
CREATE INDEX idx_sandbox_credits_case ON sandbox_credits (customer_id, case_id);
