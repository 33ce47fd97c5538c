-- Retention of Dagster's partition set (issue 13). Archiving a dispute removes its key (and what
-- Dagster's storage lets us remove of its history) from Dagster; here it only sets archived_at.
-- No platform row is ever deleted: the audit trail, proposals, decisions, executions, costs and the
-- outcome embedding stay. A new event for an archived dispute clears archived_at (audited) and the
-- SQS sensor gives the key back.
ALTER TABLE workflow_states ADD COLUMN archived_at TIMESTAMPTZ;
-- The archive pass reads the settled disputes that still hold a partition; this keeps that read
-- to the (bounded) live part of the table.
CREATE INDEX idx_workflow_states_unarchived_settled ON workflow_states (status, (COALESCE(completed_at, updated_at)))
    WHERE archived_at IS NULL;

-- One row per archive pass: what it found, what it did, what Dagster held afterwards.
CREATE TABLE archive_passes (
    id                  BIGSERIAL PRIMARY KEY,
    started_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at         TIMESTAMPTZ,
    trigger             VARCHAR(32) NOT NULL DEFAULT 'schedule',
    retention_days      INTEGER NOT NULL,
    retention_max       INTEGER NOT NULL,
    partitions_before   INTEGER,
    selected            INTEGER NOT NULL DEFAULT 0,  -- keys the rule chose
    archived            INTEGER NOT NULL DEFAULT 0,  -- marked archived (still settled when rechecked)
    skipped_changed     INTEGER NOT NULL DEFAULT 0,  -- changed state during the pass: left alone
    keys_deleted        INTEGER NOT NULL DEFAULT 0,
    keys_restored       INTEGER NOT NULL DEFAULT 0,  -- re-opened while the pass ran: key given back
    runs_deleted        INTEGER NOT NULL DEFAULT 0,
    event_rows_removed  BIGINT NOT NULL DEFAULT 0,
    partitions_after    INTEGER,
    error               TEXT
);
CREATE INDEX idx_archive_passes_started_at ON archive_passes (started_at);
