"""The import into real Postgres and a real Chroma folder, and the evaluate command end to end."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from dispute_platform.cli import main
from dispute_platform.commands.cfpb import import_cfpb_file
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.settings import get_settings
from dispute_platform_tests.evaluation.hostile import write_hostile_csv, write_slice

pytestmark = pytest.mark.integration

HOSTILE_CASES = {"CFPB-9000001", "CFPB-9000002", "CFPB-9000003", "CFPB-9000005", "CFPB-15017313"}


def _postgres_rows(db) -> dict[str, dict]:
    rows = db.fetch_all("SELECT case_id, source, embedded_model, record FROM historical_resolutions ORDER BY case_id")
    return {r["case_id"]: r for r in rows}


def _complaints(path: Path) -> list:
    from dispute_platform.datasets.cfpb import CfpbComplaint, read_complaints

    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [c for c in read_complaints(fh) if isinstance(c, CfpbComplaint)]


def _chroma_ids(vectors: VectorStoreResource) -> list[str]:
    return vectors.collection(vectors.resolutions_collection).get(include=[])["ids"]


def test_importing_twice_keeps_one_row_and_one_vector_per_case(db, tmp_path):
    vectors = VectorStoreResource(chroma_path=str(tmp_path / "chroma"))
    hostile = write_hostile_csv(tmp_path / "hostile.csv")
    real = write_slice(tmp_path / "slice.csv", 25)

    first = import_cfpb_file(hostile, db, vectors, batch_size=2)  # the repeated id lands in a later batch
    assert (first.rows_read, first.imported, first.repeated_in_file) == (11, 5, 1)
    assert [p.row for p in first.skipped] == [4, 6, 7, 8, 9]
    assert "in progress" in first.skipped[3].reason and first.skipped[3].complaint_id == "9000006"
    real_cases = {f"CFPB-{c.complaint_id}" for c in _complaints(real)}
    assert "CFPB-15017313" in real_cases  # also in the hostile file (as "15017313.0"): one case
    import_cfpb_file(real, db, vectors)

    for _ in range(2):  # a re-import replaces, never duplicates
        again = import_cfpb_file(hostile, db, vectors, batch_size=3)
        assert again.imported == 5
        import_cfpb_file(real, db, vectors)
        rows = _postgres_rows(db)
        ids = _chroma_ids(vectors)
        assert len(rows) == len(ids) == len(HOSTILE_CASES | real_cases) == 29
        assert set(rows) == set(ids) == HOSTILE_CASES | real_cases
        assert all(r["source"] == "cfpb" and r["embedded_model"] == vectors.embedder.identity for r in rows.values())

    # The later row of a repeated complaint id is the one kept, in Postgres and in Chroma; the
    # real file, imported last, owns complaint 15017313.
    assert "Denied" not in rows["CFPB-15017313"]["record"]["description"]
    assert rows["CFPB-9000001"]["record"]["outcome"] == "Closed with explanation"
    meta = vectors.collection(vectors.resolutions_collection).get(ids=["CFPB-9000001"], include=["metadatas", "documents"])
    assert meta["metadatas"][0]["outcome"] == "Closed with explanation" and meta["metadatas"][0]["action"] == "deny"
    # Nothing unmasked reached the index.
    long = vectors.collection(vectors.resolutions_collection).get(ids=["CFPB-9000002"], include=["documents"])
    assert "4111 1111 1111 1111" not in long["documents"][0]
    # Retrieval finds the imported cases as precedent.
    hits = vectors.query_similar_cases("charged twice for the same order", k=3, dispute_type="duplicate_charge")
    assert hits and all(h.source == "cfpb" for h in hits)


def test_the_import_command_starts_services_migrates_and_reports(db, pg_url, tmp_path, monkeypatch):
    # Services that are configured are used as they are: this database, no local SQS endpoint.
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("DISPUTE_EVENTS_QUEUE_URL", "http://127.0.0.1:9/queue/unused")
    monkeypatch.setenv("DISPUTE_PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("CHROMA_DB_PATH", str(tmp_path / "chroma"))
    get_settings.cache_clear()
    try:
        hostile = write_hostile_csv(tmp_path / "hostile.csv")
        result = CliRunner().invoke(main, ["import-cfpb", str(hostile), "--batch-size", "2"])
        assert result.exit_code == 0, result.output
        assert "rows read" in result.output and "imported (distinct cases)" in result.output
        assert "batch 3:" in result.output
        assert "row 4 (line" in result.output and "not a whole number" in result.output
        again = CliRunner().invoke(main, ["import-cfpb", str(hostile)])
        assert again.exit_code == 0, again.output
        assert len(_postgres_rows(db)) == 5
        assert len(_chroma_ids(VectorStoreResource(chroma_path=str(tmp_path / "chroma")))) == 5

        bad = tmp_path / "not_cfpb.csv"
        bad.write_text("name,amount\nbob,12\n")
        refused = CliRunner().invoke(main, ["import-cfpb", str(bad)])
        assert refused.exit_code == 1 and "Complaint ID" in refused.output
    finally:
        get_settings.cache_clear()


def test_evaluate_end_to_end_on_a_small_slice(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    complaints = write_slice(tmp_path / "slice.csv", 40)
    # A bad row among them is reported, never a crash.
    with complaints.open("a", encoding="utf-8") as fh:
        fh.write(
            '2025-09-01,Credit card,,Fees or interest,,"late fee",None,B,VA,1,None,Web,2025-09-01,Closed with explanation,Yes,NOT-AN-ID\n'
        )
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["evaluate", "--complaints", str(complaints), "--split", "0.5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "majority baseline" in result.output

    report = json.loads((out / "report.json").read_text())
    for key in (
        "meta",
        "counts",
        "metrics",
        "confusion_matrix",
        "baseline",
        "tokens",
        "cost_usd",
        "would_be_cost_usd",
        "caps",
        "errors",
        "by_dispute_type",
    ):
        assert key in report
    counts = report["counts"]
    assert counts["rows_read"] == 41
    assert counts["evaluated"] + report["meta"]["history_from_split"] == 40
    assert 0 < counts["evaluated"] < 40 and report["meta"]["history_cases"] > 0
    assert [e["row"] for e in report["errors"]] == [41] and "not a whole number" in report["errors"][0]["reason"]
    for name in ("accuracy", "balanced_accuracy", "escalation_rate"):
        assert 0 <= report["metrics"][name] <= 1
    matrix = report["confusion_matrix"]["matrix"]
    assert sum(sum(row.values()) for row in matrix.values()) == counts["evaluated"]
    assert report["baseline"]["class"] in ("money_back", "no_money") and report["baseline"]["accuracy"] is not None
    assert {"mean", "p95", "max"} <= set(report["tokens"]["input"]) and report["tokens"]["input"]["max"] <= 2075
    assert report["cost_usd"]["max"] == "0E-8" or float(report["cost_usd"]["max"]) == 0.0
    assert float(report["would_be_cost_usd"]["mean"]) > 0 and report["would_be_cost_usd"]["output_tokens"] == 250
    assert report["caps"]["stopped"] == 0 and report["meta"]["model"] == "precedent-rules"
    # Issue 14: the kNN baseline of the same run, what determined each proposal, and the
    # reliability of the confidence over the decided disputes.
    knn = report["knn_baseline"]
    assert knn["n"] == counts["evaluated"] and 0 <= knn["balanced_accuracy"] <= 1 and knn["k"] == 30
    assert set(knn["balanced_accuracy_by_k"]) == {"5", "10", "30"}
    assert sum(b["n"] for b in report["by_basis"].values()) == counts["evaluated"]
    assert set(report["by_basis"]) <= {"policy", "precedent", "none"}
    decided = report["reliability"]["decided"]
    assert decided["n"] == report["metrics"]["decided"] == sum(band["n"] for band in decided["bands"])
    assert "accuracy_on_decided" in report["metrics"] and "escalation_rate" in report["metrics"]
    assert report["calibration"]["history_cases"] == report["meta"]["history_cases"]
    assert "kNN baseline" in result.output

    markdown = (out / "report.md").read_text()
    for heading in ("## Accuracy", "### Confusion matrix", "### By basis", "### Reliability", "## Tokens and cost", "## Caps",
                    "## Bad rows and errors"):  # fmt: skip
        assert heading in markdown
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == counts["evaluated"]
    assert all(json.loads(line)["case_id"].startswith("CFPB-") for line in lines)


def test_evaluate_refuses_unusable_options_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    get_settings.cache_clear()
    complaints = write_slice(tmp_path / "slice.csv", 3)
    runner = CliRunner()
    no_key = runner.invoke(
        main, ["evaluate", "--complaints", str(complaints), "--provider", "openai", "--out", str(tmp_path / "o")]
    )
    assert no_key.exit_code == 2 and "OPENAI_API_KEY" in no_key.output
    bad_split = runner.invoke(main, ["evaluate", "--complaints", str(complaints), "--split", "1.5", "--out", str(tmp_path / "o")])
    assert bad_split.exit_code == 2 and "between 0 and 1" in bad_split.output
    not_cfpb = tmp_path / "x.csv"
    not_cfpb.write_text("a,b\n1,2\n")
    refused = runner.invoke(main, ["evaluate", "--complaints", str(not_cfpb), "--out", str(tmp_path / "o")])
    assert refused.exit_code == 2 and "Complaint ID" in refused.output
    assert not Path(tmp_path / "o").exists()


class _FakeOpenAI(BaseHTTPRequestHandler):
    """Answers every chat completion with a full refund of 10.00 and fixed usage."""

    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeOpenAI.requests.append(body)
        content = json.dumps({"action": "full_refund", "amount": 10.0, "confidence": 0.8, "reasoning": "test",
                              "cited_policies": [], "similar_cases": []})  # fmt: skip
        reply = {
            "id": "chatcmpl-eval", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
                      "prompt_tokens_details": {"cached_tokens": 0}},
        }  # fmt: skip
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_evaluate_with_the_openai_provider_against_a_local_server(tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    get_settings.cache_clear()
    _FakeOpenAI.requests.clear()
    try:
        complaints = write_slice(tmp_path / "slice.csv", 12)
        out = tmp_path / "report"
        result = CliRunner().invoke(main, ["evaluate", "--complaints", str(complaints), "--split", "0.5",
                                           "--provider", "openai", "--out", str(out)])  # fmt: skip
    finally:
        server.shutdown()
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    evaluated = report["counts"]["evaluated"]
    assert evaluated > 0 and len(_FakeOpenAI.requests) == evaluated  # no cache: one call per dispute
    assert all(r["model"] == "gpt-4o-mini" and r["messages"][0]["role"] == "system" for r in _FakeOpenAI.requests)
    assert report["meta"]["provider"] == "openai" and report["meta"]["model"] == "gpt-4o-mini"
    # 1,000 input and 100 output tokens per call at gpt-4o-mini prices
    assert report["cost_usd"]["mean"] == "0.00021000"
    # The guardrails still hold: an unauthorized claim is escalated whatever the model says.
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert all(r["action"] == "escalate" for r in results if r["dispute_type"] == "unauthorized")
    assert all(r["action"] in ("full_refund", "escalate", "partial_refund") for r in results)
