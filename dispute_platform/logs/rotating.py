"""One log file shared by every process on the machine, rotated by size under a file lock."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path


class RotatingFile:
    """Appends lines to one file shared by every process on the machine (webserver, daemon, code
    servers, run workers): each write holds an exclusive lock on `<file>.lock`, reopens the file
    when another process rotated it, and rotates when the next line would pass `max_bytes`."""

    def __init__(self, path: Path, max_bytes: int, backup_count: int):
        self.path = path
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._lock_fd: int | None = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._lock_fd is None:
            self._lock_fd = os.open(f"{self.path}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _stale(self) -> bool:
        if self._fd is None:
            return True
        try:
            return os.stat(self.path).st_ino != os.fstat(self._fd).st_ino
        except FileNotFoundError:
            return True

    def _rotate(self) -> None:
        for index in range(self.backup_count - 1, 0, -1):
            source = Path(f"{self.path}.{index}")
            if source.exists():
                os.replace(source, f"{self.path}.{index + 1}")
        if self.path.exists():
            os.replace(self.path, f"{self.path}.1")
        self._open()

    def write(self, line: str) -> None:
        data = (line.replace("\n", "\\n") + "\n").encode("utf-8")
        with self._lock:
            if self._lock_fd is None:
                self._open()
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                if self._stale():
                    self._open()
                size = os.fstat(self._fd).st_size
                if size and size + len(data) > self.max_bytes:
                    self._rotate()
                os.write(self._fd, data)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            for fd in (self._fd, self._lock_fd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._lock_fd = None


_files: dict[tuple[str, int, int], RotatingFile] = {}
_files_lock = threading.Lock()


def shared_file(path: Path, max_bytes: int, backup_count: int) -> RotatingFile:
    key = (str(path.resolve()), max_bytes, backup_count)
    with _files_lock:
        if key not in _files:
            _files[key] = RotatingFile(path.resolve(), max_bytes, backup_count)
        return _files[key]
