"""A scripted host for native tests: `FakeIo`, with crash injection.

`FakeIo(handler)` answers every request with `handler(request)` (a simulated
vendor), keeps a virtual clock that `sleep` advances, an in-memory sink and
checkpoint with the host's commit semantics (records emitted since the last
commit are delivered by it, and discarded by a crash), and the log.
`crash_after(n)` raises `Crash` at the n-th step (a send or a commit, before
or after it), so a test can stop a run anywhere and check that the next runs
deliver every record exactly once (`crash_everywhere`).
"""

from __future__ import annotations

import json
from typing import Callable

from .errors import HostError
from .http import Request, Response
from .io import Io
from .log import Level


class Crash(BaseException):
    """The simulated process died here (a `BaseException`, so collector code
    that catches `Exception` cannot swallow it)."""


class FakeIo(Io):
    """An in-memory host. `delivered` holds every record a commit made durable."""

    def __init__(self, handler: Callable[[Request], Response], now_ms: int = 1_718_000_000_000) -> None:
        self.handler = handler
        self.clock_ms = now_ms
        self.settings: dict[str, str] = {}
        self.secrets: dict[str, str] = {}
        self.cursor: str | None = None
        self.pending: list[str] = []
        self.delivered: list[str] = []
        self.commits: list[str] = []
        self.requests: list[Request] = []
        self.logs: list[tuple[Level, str]] = []
        self.slept_s: list[float] = []
        self.name = "test-source"
        self._crash_at: int | None = None
        self.steps = 0

    def setting(self, name: str) -> str | None:
        return self.settings.get(name)

    def secret(self, name: str) -> str | None:
        return self.secrets.get(name)

    def source_name(self) -> str:
        return self.name

    def with_settings(self, **settings: str) -> "FakeIo":
        self.settings.update(settings)
        return self

    def with_secrets(self, **secrets: str) -> "FakeIo":
        self.secrets.update(secrets)
        return self

    def now_ms(self) -> int:
        return self.clock_ms

    def sleep(self, seconds: float) -> None:
        self.slept_s.append(seconds)
        self.clock_ms += int(seconds * 1000)

    def crash_after(self, steps: int | None) -> None:
        """Crash at step `steps` from now (None: never)."""
        self.steps = 0
        self._crash_at = steps

    def _step(self) -> None:
        self.steps += 1
        if self._crash_at is not None and self.steps >= self._crash_at:
            self._crash_at = None
            self.pending.clear()
            raise Crash(f"crash at step {self.steps}")

    def send(self, request: Request) -> Response:
        self._step()
        self.requests.append(request)
        response = self.handler(request)
        self._step()
        return response

    def emit(self, records: list[str]) -> None:
        for r in records:
            if "\n" in r or not r.startswith("{"):
                raise HostError(f"the host refused record {records.index(r)} of the batch: not one JSON object on one line")
            json.loads(r)
        self.pending.extend(records)

    def commit(self, cursor: str) -> None:
        self._step()
        json.loads(cursor)
        self.delivered.extend(self.pending)
        self.pending.clear()
        self.cursor = cursor
        self.commits.append(cursor)
        self._step()

    def checkpoint(self) -> str | None:
        return self.cursor

    def log(self, level: Level, message: str) -> None:
        self.logs.append((level, message))

    def random_bytes(self, n: int) -> bytes:
        return bytes((i * 37 + 11) % 256 for i in range(n))

    def end_run(self, ok: bool) -> None:
        """What the host does when `collect` returns: an ok run delivers what
        was emitted after the last commit; a failed one discards it."""
        if ok:
            self.delivered.extend(self.pending)
        self.pending.clear()


def run(io: FakeIo, collect: Callable[[Io], object]) -> object:
    """Runs `collect(io)` as the host would, returning its summary or the
    `CollectError` it raised."""
    from .errors import CollectError

    try:
        summary = collect(io)
    except CollectError as e:
        io.end_run(False)
        return e
    io.end_run(True)
    return summary


def crash_everywhere(make_io: Callable[[], FakeIo], collect: Callable[[Io], object], expected: Callable[[FakeIo], list[str]], max_runs: int = 50) -> int:
    """For every step n of a clean run, a fresh host runs `collect` crashing
    at step n, then runs it again (as often as needed) until it is caught up,
    and checks that `expected(io)` records were delivered exactly once, in
    order. Returns how many crash points were tried."""
    clean = make_io()
    run(clean, collect)
    total = clean.steps
    for n in range(1, total + 1):
        io = make_io()
        io.crash_after(n)
        try:
            collect(io)
        except Crash:
            pass
        except Exception:  # noqa: BLE001 - a failed run is also a stop
            io.end_run(False)
        else:
            io.end_run(True)
        io.crash_after(None)
        for _ in range(max_runs):
            before = len(io.delivered)
            result = run(io, collect)
            if len(io.delivered) == before and not isinstance(result, Exception):
                break
        want = expected(io)
        assert io.delivered == want, f"crash at step {n}: delivered {len(io.delivered)} records, expected {len(want)}"
    return total
