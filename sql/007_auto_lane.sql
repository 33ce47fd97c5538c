-- The policy auto-approval lane and what people do about it afterwards. Append-only: a reversal
-- is a new row (a new, audited dispute action), never an edit of the decision or the execution.
CREATE TABLE dispute_actions (
    id               BIGSERIAL PRIMARY KEY,
    case_id          VARCHAR(64) NOT NULL,
    proposal_version INTEGER NOT NULL,
    kind             VARCHAR(32) NOT NULL CHECK (kind IN ('auto_approved', 'post_review_upheld', 'post_review_reversed')),
    reviewer_id      INTEGER NOT NULL REFERENCES reviewers (id),
    decision_id      BIGINT REFERENCES review_decisions (id),
    sampled          BOOLEAN NOT NULL DEFAULT FALSE,
    details          JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_dispute_actions_case ON dispute_actions (case_id, id);
-- One auto-approval and at most one after-the-fact verdict per proposal version.
CREATE UNIQUE INDEX dispute_actions_once ON dispute_actions (case_id, proposal_version, kind)
    WHERE kind = 'auto_approved';
CREATE UNIQUE INDEX dispute_actions_one_verdict ON dispute_actions (case_id, proposal_version)
    WHERE kind IN ('post_review_upheld', 'post_review_reversed');
CREATE TRIGGER dispute_actions_append_only BEFORE UPDATE OR DELETE ON dispute_actions
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
