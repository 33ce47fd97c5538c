-- The SQS sensor asks, for each case with an event after its cursor, whether the case had an
-- earlier event (store/repo.py new_disputes_after): one index probe per case instead of a scan
-- of every event. Also serves returning_disputes_between and first_event.
CREATE INDEX IF NOT EXISTS idx_dispute_events_case_id_id ON dispute_events (case_id, id);
