"""A scripted vendor: a real HTTP server on 127.0.0.1 (port 0, a thread) that answers each
(method, path) with queued responses and records every request it received."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dispute_platform_tests.fake_http import FakeServer, Reply, Request

__all__ = ["FakeVendor", "Reply", "Seen", "fixture"]

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class FakeVendor:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Reply | Callable[[Seen], Reply]]] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self.server = FakeServer(self._handle)
        self.url = self.server.url

    def _handle(self, request: Request) -> Reply:
        parts = urlsplit(request.target)
        return self._next(Seen(request.method, parts.path, parse_qs(parts.query), request.headers, request.body))

    def on(self, method: str, path: str, *replies: Reply | Callable[[Seen], Reply]) -> None:
        """Answer `method path` with these replies in turn; the last one repeats."""
        self.routes[(method.upper(), path)] = list(replies)

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            queue = self.routes.get((seen.method, seen.path))
            if not queue:
                return Reply(404, {"message": f"no route for {seen.method} {seen.path}"})
            reply = queue.pop(0) if len(queue) > 1 else queue[0]
        return reply(seen) if callable(reply) else reply

    def seen(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [r for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path)]

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def vendor() -> Iterator[FakeVendor]:
    server = FakeVendor()
    yield server
    server.close()


# Retry settings that keep the error-path tests fast.
FAST = {"backoff_base_seconds": 0.001, "backoff_max_seconds": 0.01, "retry_after_cap_seconds": 0.2, "timeout_seconds": 2.0}
