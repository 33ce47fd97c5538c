"""The workflow functions the dispute assets are thin over, called directly: one typed outcome per
dispute, and the states and audit rows they leave. Real PostgreSQL (and Chroma for proposals);
the sandbox providers and the rules engine."""

from __future__ import annotations

import pytest

from dispute_platform.settings import Settings
from dispute_platform.store import repo
from dispute_platform.workflow.enrich import Providers, enrich_batch, load_context
from dispute_platform.workflow.proposal_step import propose_batch
from dispute_platform_tests.integration.harness import build_test_resources, sample_event, store_events

pytestmark = pytest.mark.integration

VALID, OUTSIDE_WINDOW, NO_EVENT = "CASE-1063", "CASE-1060", "CASE-9999"


def _providers(resources: dict) -> Providers:
    return Providers(crm=resources["crm"], billing=resources["billing"], payments=resources["payments"])


def _enrich(db, resources: dict, keys: list[str], **kwargs):
    options = {"fetches_in_flight": 3, "disputes_in_flight": 2, "refetch": False, "run_id": "run-1"} | kwargs
    return enrich_batch(db, keys, _providers(resources), **options)


def test_enrich_batch_returns_one_outcome_per_dispute_and_stores_no_event_copy(db, sqs, pg_url, tmp_path):
    resources = build_test_resources(pg_url, sqs, tmp_path)
    store_events(db, [sample_event(VALID), sample_event(OUTSIDE_WINDOW)])

    outcomes = {o.case_id: o for o in _enrich(db, resources, [VALID, OUTSIDE_WINDOW, NO_EVENT])}

    assert [outcomes[k].result for k in (VALID, OUTSIDE_WINDOW, NO_EVENT)] == ["enriched", "invalid", "skipped"]
    assert outcomes[VALID].metadata["valid"] is True and outcomes[VALID].metadata["segment"] == "smb"
    assert outcomes[NO_EVENT].metadata == {"status": "not enriched again: dispute is no workflow state"}
    assert all(o.error is None for o in outcomes.values())
    state = db.transact(lambda cur: repo.workflow_state(cur, VALID))
    assert state["status"] == "enriched" and "event" not in state["crm_data"]
    # The context is rebuilt from the stored event and records, as it was validated.
    event = db.transact(lambda cur: repo.first_event(cur, VALID))
    rebuilt = load_context(state, event["body"])
    assert rebuilt.verdict.valid and rebuilt.event.case_id == VALID
    assert [c.charge_id for c in rebuilt.relevant_charges] == state["payment_data"]["relevant_charge_ids"]

    # Done disputes are skipped on a second pass, unless refetched.
    again = _enrich(db, resources, [VALID, OUTSIDE_WINDOW])
    assert [o.result for o in again] == ["skipped", "skipped"]
    assert again[0].metadata == {"status": "not enriched again: dispute is enriched"}
    refetched = _enrich(db, resources, [VALID], refetch=True)
    assert [o.result for o in refetched] == ["enriched"]


def test_load_context_reads_a_row_that_still_carries_the_event(db, sqs, pg_url, tmp_path):
    resources = build_test_resources(pg_url, sqs, tmp_path)
    store_events(db, [sample_event(VALID)])
    _enrich(db, resources, [VALID])
    state = dict(db.transact(lambda cur: repo.workflow_state(cur, VALID)))
    event = db.transact(lambda cur: repo.first_event(cur, VALID))["body"]
    legacy = state | {"crm_data": state["crm_data"] | {"event": event}}

    assert load_context(legacy, None) == load_context(state, event) == load_context(legacy, event)
    with pytest.raises(ValueError, match="no stored event"):
        load_context(state, None)


def test_enrich_batch_records_a_fetch_failure_and_returns_it(db, sqs, pg_url, tmp_path):
    resources = build_test_resources(pg_url, sqs, tmp_path)
    store_events(db, [sample_event(VALID)])

    class Down:
        def fetch_case(self, case_id):
            raise ConnectionError("crm: connection refused")

    providers = Providers(crm=Down(), billing=resources["billing"], payments=resources["payments"])  # type: ignore[arg-type]
    [outcome] = enrich_batch(db, [VALID], providers, fetches_in_flight=3, disputes_in_flight=1, refetch=False, run_id="r")

    assert outcome.result == "fetch_failed" and outcome.error == "ConnectionError: crm: connection refused"
    assert outcome.metadata == {"status": "fetch failed", "error": outcome.error}
    state = db.transact(lambda cur: repo.workflow_state(cur, VALID))
    assert state["status"] == "fetch_failed"


def test_propose_batch_proposes_for_enriched_disputes_and_says_why_it_skipped_the_others(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = build_test_resources(pg_url, sqs, tmp_path)
    store_events(db, [sample_event(VALID), sample_event(OUTSIDE_WINDOW)])
    _enrich(db, resources, [VALID, OUTSIDE_WINDOW])

    def propose(run_id: str):
        return propose_batch(
            db, [VALID, OUTSIDE_WINDOW], vectors=resources["vectors"], proposer=resources["proposer"],
            limits=resources["limits"], email=resources["email"], sqs=resources["sqs"], settings=Settings(),
            proposals_in_flight=2, regenerate=False, run_id=run_id,
        )  # fmt: skip

    proposed, skipped = propose("run-1")

    assert proposed.case_id == VALID and proposed.result == "proposed" and proposed.saved
    assert proposed.version == 1 and proposed.status == "pending_review" and proposed.proposal is not None
    assert proposed.auto_approval and proposed.error is None and not proposed.failed_caps
    assert skipped.case_id == OUTSIDE_WINDOW and skipped.result == "skipped" and not skipped.saved
    assert skipped.reason is not None and skipped.reason.startswith("dispute is invalid (")
    events = [r["event"] for r in db.fetch_all("SELECT event FROM audit_log WHERE case_id = %s AND step = 'ai_proposal'"
                                               " ORDER BY id", (VALID,))]  # fmt: skip
    assert events[0] == "proposed"
    # A dispute with an undecided proposal is not asked again unless regenerated.
    assert [o.result for o in propose("run-2")] == ["skipped", "skipped"]
