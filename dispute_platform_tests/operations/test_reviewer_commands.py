"""`dispute-platform reviewer add | rotate | revoke | list`: names are one per person whatever
their case, and rotating or revoking takes effect at once (the old token stops working)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dispute_platform.store import reviewers
from dispute_platform_tests.operations.test_doctor import local_env  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


def _token(output: str) -> str:
    return output.strip().splitlines()[-1].strip()


def test_add_rotate_revoke_take_effect_at_once(db, local_env):  # noqa: F811
    from dispute_platform.cli import main

    cli = CliRunner()
    added = cli.invoke(main, ["reviewer", "add", "alice", "--email", "alice@example.com"], catch_exceptions=False)
    assert added.exit_code == 0, added.output
    first = _token(added.output)
    assert db.transact(lambda cur: reviewers.reviewer_for_token(cur, first)).name == "alice"

    for taken in ("ALICE", "Alice"):
        again = cli.invoke(main, ["reviewer", "add", taken])
        assert again.exit_code == 1 and "already exists" in again.output
    for bad in ("auto-policy", "mаllory", "x" * 65):
        refused = cli.invoke(main, ["reviewer", "add", bad])
        assert refused.exit_code == 1 and ("reviewer name" in refused.output or "reserved" in refused.output), refused.output

    rotated = cli.invoke(main, ["reviewer", "rotate", "Alice"], catch_exceptions=False)
    assert rotated.exit_code == 0, rotated.output
    second = _token(rotated.output)
    assert second != first
    assert db.transact(lambda cur: reviewers.reviewer_for_token(cur, first)) is None
    assert db.transact(lambda cur: reviewers.reviewer_for_token(cur, second)).name == "alice"

    revoked = cli.invoke(main, ["reviewer", "revoke", "alice"], catch_exceptions=False)
    assert revoked.exit_code == 0, revoked.output
    assert db.transact(lambda cur: reviewers.reviewer_for_token(cur, second)) is None
    listed = cli.invoke(main, ["reviewer", "list"], catch_exceptions=False)
    assert "alice" in listed.output and "revoked" in listed.output
    assert cli.invoke(main, ["reviewer", "revoke", "nobody"]).exit_code == 1
