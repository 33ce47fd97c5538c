-- The disputes each sensor-requested run was asked to act on. Dagster addresses dynamic partitions
-- of a run by range (insertion order), so a key another writer added between a range's first and
-- last key lands inside it; the assets act on the range's keys that are listed here for the run's
-- batch (its `dispute_platform/batch` tag) and leave the others untouched. A review batch also
-- claims each decision once (a decision is carried by one batch only); `position` orders a batch's
-- disputes as in the partition set, so a later tick can ask for the same run again.
CREATE TABLE run_disputes (
    batch       TEXT NOT NULL,
    case_id     TEXT NOT NULL,
    decision_id BIGINT,
    position    INTEGER NOT NULL DEFAULT 0,  -- place in the batch's range (partition order)
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (batch, case_id)
);
CREATE UNIQUE INDEX idx_run_disputes_decision ON run_disputes (case_id, decision_id) WHERE decision_id IS NOT NULL;
CREATE INDEX idx_run_disputes_case ON run_disputes (case_id);
