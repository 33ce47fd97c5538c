"""The local SQS-compatible endpoint the CLI starts: moto's server, with two of its receive paths
fixed so that it behaves like SQS under the sensor's load.

1. Cost. moto (5.2) checks each message it hands out against the queue's retention period by
   computing every attribute of the queue, and three of them walk the whole queue reading the
   clock per message: a 10-message receive at 1,000 queued cost ~0.6 s, so draining a queue of N
   was quadratic in N (1,000 events: ~32 s of receives). The check needs one number; it reads it
   directly here. Same answer, O(1) instead of O(depth) per message.
2. Atomicity. moto's threaded server runs two receives at once without a lock, and both may
   hand out the same message (each builds its list of visible messages before either marks one
   received). SQS does not do that within a visibility timeout. Receives on the endpoint are
   made atomic; a long poll waits outside the lock.

Nothing else changes: sends, deletes, visibility, redrive to the dead-letter queue are moto's.
AWS SQS needs none of this; with a queue URL configured this module is not used at all.

`python -m dispute_platform.local_sqs --port 9324` runs the endpoint in its own process (the
benchmarks do; the CLI runs it in a thread of its own process).
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.05
_patched = False
_patch_lock = threading.Lock()


def patch_moto_sqs() -> None:
    """Apply both fixes to moto's SQS backend in this process (idempotent)."""
    global _patched
    with _patch_lock:
        if _patched:
            return
        from moto.core.utils import unix_time
        from moto.sqs.models import SQSBackend

        original_receive = SQSBackend.receive_message
        original_retention = SQSBackend.is_message_valid_based_on_retention_period
        receive_lock = threading.Lock()

        def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
            retention = int(self.get_queue(queue_name).message_retention_period)
            return retention + message.sent_timestamp / 1000 > unix_time()

        def receive_message(
            self: Any,
            queue_name: str,
            count: int,
            wait_seconds_timeout: int,
            visibility_timeout: int,
            message_attribute_names: list[str] | None = None,
        ) -> list[Any]:
            deadline = time.monotonic() + (wait_seconds_timeout or 0)
            while True:
                with receive_lock:
                    found = original_receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
                if found or time.monotonic() >= deadline:
                    return found
                time.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))

        # moto's own functions stay reachable (functools' convention), for tests that compare answers.
        is_message_valid_based_on_retention_period.__wrapped__ = original_retention  # type: ignore[attr-defined]
        receive_message.__wrapped__ = original_receive  # type: ignore[attr-defined]
        SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]
        SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
        _patched = True


def start_local_sqs(port: int, host: str = "127.0.0.1") -> Any:
    """A started ThreadedMotoServer with the fixes applied (port 0: any free port)."""
    from moto.server import ThreadedMotoServer

    patch_moto_sqs()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="The platform's local SQS-compatible endpoint, in this process.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9324)
    args = parser.parse_args()
    server = start_local_sqs(args.port, args.host)
    host, port = server.get_host_and_port()
    print(f"local SQS endpoint at http://{host}:{port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
