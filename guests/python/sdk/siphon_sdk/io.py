"""The I/O seam of a collector run.

Everything a run does to the outside world goes through an `Io`: the clock,
sleeping, HTTP, emitting records, committing the cursor, logging and the
source's configuration. `HostIo` is the real thing inside a component (over
the generated bindings, in `_wasi.py`); `siphon_sdk.testing.FakeIo` is a
scripted host for native tests, with crash injection. Vendor code written
against an `Io` is therefore tested natively, protocol and all.
"""

from __future__ import annotations

from .http import Request, Response
from .log import Level


class Io:
    """What a collector run needs from its host."""

    def now_ms(self) -> int:
        """Wall-clock time, epoch milliseconds (UTC)."""
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        """Blocks the run for `seconds`."""
        raise NotImplementedError

    def send(self, request: Request) -> Response:
        """Sends `request`; raises `HttpError` only when no response arrived."""
        raise NotImplementedError

    def emit(self, records: list[str]) -> None:
        """Queues records (single-line JSON objects) for the next `commit`."""
        raise NotImplementedError

    def commit(self, cursor: str) -> None:
        """Delivers queued records, then makes `cursor` the committed cursor."""
        raise NotImplementedError

    def checkpoint(self) -> str | None:
        """The committed cursor, or None before the first commit."""
        raise NotImplementedError

    def log(self, level: Level, message: str) -> None:
        """Writes to the host log (secrets are redacted by the host)."""
        raise NotImplementedError

    def setting(self, name: str) -> str | None:
        """A setting of the source, as text."""
        raise NotImplementedError

    def secret(self, name: str) -> str | None:
        """A secret of the source."""
        raise NotImplementedError

    def source_name(self) -> str:
        """The source's name."""
        raise NotImplementedError

    def random_bytes(self, n: int) -> bytes:
        """`n` cryptographically secure random bytes (`wasi:random`)."""
        raise NotImplementedError


class HostIo(Io):
    """`Io` over the siphon host imports. The bindings exist only inside the
    component, so they are imported on first use."""

    def __init__(self) -> None:
        from . import _wasi

        self._wasi = _wasi

    def now_ms(self) -> int:
        return self._wasi.now_ms()

    def sleep(self, seconds: float) -> None:
        self._wasi.sleep(seconds)

    def send(self, request: Request) -> Response:
        return self._wasi.http_send(request)

    def emit(self, records: list[str]) -> None:
        if records:
            self._wasi.sink_emit(records)

    def commit(self, cursor: str) -> None:
        self._wasi.checkpoint_commit(cursor)

    def checkpoint(self) -> str | None:
        return self._wasi.checkpoint_load()

    def log(self, level: Level, message: str) -> None:
        self._wasi.log(level, message)

    def setting(self, name: str) -> str | None:
        return self._wasi.setting(name)

    def secret(self, name: str) -> str | None:
        return self._wasi.secret(name)

    def source_name(self) -> str:
        return self._wasi.source_name()

    def random_bytes(self, n: int) -> bytes:
        return self._wasi.random_bytes(n)
