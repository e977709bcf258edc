"""A helper process that flushes the audit log's write-ahead log to disk when asked.

The proxy commits each decision to the write-ahead log on its event loop and
asks this process, over a pipe, to flush it. The flush then overlaps the
round trip to ClassDojo without a thread of the proxy competing with its
event loop for Python's lock (measured: a flushing thread slowed every write
more than the flush it hid). ``fdatasync`` flushes a file's data whichever
process wrote it.

Protocol: the proxy writes 8-byte big-endian sequence numbers; for each
batch it has read, this process flushes once and writes back the largest
number read. On a failed flush it writes ``FAILED`` and exits: a flush
cannot be retried safely, so the proxy then refuses every later write.

Run by the proxy as ``python -m dojoguard.audit.flusher DATABASE``. It
ignores SIGINT, SIGTERM and SIGHUP and exits when its input closes.
"""

from __future__ import annotations

import os
import signal
import struct
import sys

FAILED = 2**64 - 1
_SEQ = struct.Struct(">Q")
ANSWER = _SEQ  # the highest sequence number flushed, or FAILED


class Flusher:
    """Flushes the write-ahead log of one SQLite database (or the database itself, once checkpointed away).

    Used by this helper and, for flushes in its own process, by ``AuditLog.sync``.
    """

    def __init__(self, database: str):
        self.database = database
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None

    def flush(self) -> None:
        """fdatasync the write-ahead log as it is now (SQLite may replace the file); raises OSError."""
        path = f"{self.database}-wal"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            path = self.database
            st = os.stat(path)
        ident = (st.st_dev, st.st_ino)
        if self._fd is None or ident != self._ident:
            if self._fd is not None:
                os.close(self._fd)
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            self._ident = ident
        os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def request(seq: int) -> bytes:
    return _SEQ.pack(seq)


def serve(database: str, requests: int, answers: int) -> int:
    flusher = Flusher(database)
    pending = b""
    while True:
        chunk = os.read(requests, 65536)
        if not chunk:
            return 0  # the proxy closed the pipe: it is shutting down
        pending += chunk
        usable = len(pending) - len(pending) % _SEQ.size
        if not usable:
            continue
        seqs, pending = pending[:usable], pending[usable:]
        highest = max(s for (s,) in _SEQ.iter_unpack(seqs))
        try:
            flusher.flush()
        except OSError as exc:
            os.write(answers, ANSWER.pack(FAILED))
            print(f"audit flush failed: {exc}", file=sys.stderr)
            return 1
        os.write(answers, ANSWER.pack(highest))


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m dojoguard.audit.flusher DATABASE", file=sys.stderr)
        return 2
    # Stopping is the proxy's decision: it closes the pipe (or dies, which closes it too).
    # A Ctrl-C to the terminal's process group or systemd's SIGTERM to the whole service
    # must not take the helper away first, or the proxy's last records could not be flushed.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    return serve(sys.argv[1], sys.stdin.fileno(), sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
