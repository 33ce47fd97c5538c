-- Calibrations of proposal confidence (domain/calibration.py), fitted from the past cases in
-- historical_resolutions and from reviewers' decisions by the `proposal_calibration` asset.
-- Append-only: the newest row is the one proposals use; older rows say which calibration a stored
-- proposal was given (its `calibration` field names calibration_id).
CREATE TABLE proposal_calibrations (
    id              BIGSERIAL PRIMARY KEY,
    calibration_id  VARCHAR(64) NOT NULL,
    history_version VARCHAR(64) NOT NULL,   -- digest of the history it was fitted on (count, last update)
    history_cases   INTEGER NOT NULL,
    held_back       INTEGER NOT NULL,
    calibration     JSONB NOT NULL,
    fitted_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    dagster_run_id  VARCHAR(64)
);
CREATE INDEX idx_proposal_calibrations_fitted ON proposal_calibrations (fitted_at DESC, id DESC);
