"""One process at a time per run directory (and per translation output folder).

A lock is an ``flock`` on a hidden file in the folder, holding who took it, removed when the
lock is released. The kernel releases the lock when its process ends, however it ends, so a
file left by a killed process is never a stale lock: the next process simply takes it.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

LOCK_NAME = ".pipeline.lock"


class LockError(RuntimeError):
    """The folder is in use by another process; the message names it."""


@contextmanager
def exclusive(folder: Path, what: str = "run directory", name: str = LOCK_NAME,
              wait: bool = False) -> Iterator[None]:
    """Hold the lock ``name`` of ``folder`` (created if needed) for the ``with`` block.

    Raises :class:`LockError` naming the holder's pid and host when another process holds it,
    or, with ``wait``, waits for it to be released.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LockError(f"{folder}: this {what} is in use by {holder}; wait for it to "
                            "finish or stop it, then rerun") from None
        # The holder before us may have removed the file between our open and our lock: then
        # we hold a lock on a file nobody else will open. Start again on the current file.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} (since {since})".encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
