"""Issue 5: the progress helper every long command uses (counted lines off a terminal)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from rich.console import Console

from dispute_platform.commands.progress import counted, step, watch
from dispute_platform.commands.reembed import parse_buckets


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, force_terminal=False), out


def test_counted_prints_lines_with_counts_share_and_rate_off_a_terminal():
    console, out = _console()
    with counted("embedding", total=1000, unit="rows", console=console, every_seconds=3600, every_fraction=0.25) as bar:
        for _ in range(10):
            bar.advance(100)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("embedding: 300/1,000 rows (30%)")  # a line per quarter, not per update
    assert lines[-1].startswith("embedding: 1,000/1,000 rows (100%)") and lines[-1].endswith("s")
    assert "rows/s" in lines[-1]
    assert len(lines) <= 5


def test_step_and_watch(tmp_path):
    console, out = _console()
    step(console, 2, 4, "database: migrations")
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    polls = iter([(0, 10), (5, 10), (10, 10)] + [(10, 10)] * 100)
    assert watch(process, lambda: next(polls), "cases embedded", unit="cases", console=console, interval=0.05) == 0
    text = out.getvalue()
    assert "[2/4] database: migrations" in text and "cases embedded: 10/10 cases (100%)" in text


def test_parse_buckets():
    assert parse_buckets(None) is None
    assert parse_buckets("b00..b03,b10") == [0, 1, 2, 3, 10]
    assert parse_buckets("7, 9") == [7, 9]
    with pytest.raises(ValueError):
        parse_buckets("b99")
