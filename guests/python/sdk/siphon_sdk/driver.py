"""The stream driver: one page loop for every collector, as in the Rust SDK.

A collector describes each vendor stream with a `Stream`: its name, how to
build the next request from the cursor, and how to read a response into a
`Page` (records with their keys, the next cursor, whether more is waiting, an
optional wait hint). `Driver` runs the loop:

- **per-page commit**: a page's records and the cursor after it become
  durable together, so a crash repeats a page but never skips one;
- **in-run dedup** by record key (bounded memory);
- **pacing**: vendor wait hints and rate-limit headers, persisted across runs
  as `not_before_ms`; a wait longer than `Budget.max_wait_s` ends the stream
  for this run; 429s are retried a bounded number of times;
- **budgets**: pages per stream and wall time per run;
- **failure isolation**: a stream that fails does not stop the others; the
  run then ends with an error naming every failed stream.

The checkpoint (`Checkpoint`) and the run note are the Rust driver's, so a
Python collector and a Rust one of the same vendor continue each other.
The consume-once protocol (in-flight marker, resend) is not ported yet.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .auth import Auth
from .checkpoint import Checkpoint, StreamState
from .errors import CollectError, ConfigError, RateLimitedError
from .http import Request, Response, reset_wait
from .log import Level
from .summary import Summary

#: Keys remembered for in-run dedup; duplicates come from neighbouring pages.
SEEN_CAP = 200_000


@dataclass
class Page:
    """One page a stream read from a response."""

    #: `(key, record)`: the vendor's id (or a content hash) and the record text.
    records: list[tuple[str, str]]
    #: The cursor after this page (JSON-serialisable).
    next: Any
    #: True when the vendor has more right now.
    more: bool = False
    #: Seconds the vendor asks not to be called again.
    wait_s: float | None = None
    #: Items that could not be records, with why; logged.
    skipped: list[str] = field(default_factory=list)


class Ctx:
    """What a stream's methods may use while the driver runs it."""

    def __init__(self, io, auth: Auth) -> None:  # noqa: ANN001
        self.io, self.auth = io, auth

    def now_ms(self) -> int:
        return self.io.now_ms()

    def log(self, level: Level, message: str) -> None:
        self.io.log(level, message)


class Stream:
    """One vendor stream. Cursors are JSON values (usually dicts); override
    `load_cursor` to check the shape of a committed one."""

    name = "stream"

    def load_cursor(self, value: Any) -> Any:
        """The cursor from its committed JSON value (None before the first page)."""
        return value

    def request(self, cx: Ctx, cursor: Any) -> Request | None:
        """The next request, or None when there is nothing to ask now."""
        raise NotImplementedError

    def parse(self, cx: Ctx, cursor: Any, response: Response) -> Page:
        """Reads a 2xx response to the request built from `cursor`."""
        raise NotImplementedError

    def rate_limited(self, response: Response, now_ms: int) -> float | None:
        """Seconds the vendor asks to wait when `response` says "slow down";
        None when it does not. Default: a 429's `Retry-After` (0: back off)."""
        if response.status != 429:
            return None
        wait = response.retry_after(now_ms)
        return 0.0 if wait is None else wait

    def error(self, response: Response) -> CollectError:
        """The error a non-2xx response (other than rate limiting) means."""
        return response.status_error(f"stream `{self.name}`")


@dataclass
class Budget:
    """Limits of one run."""

    max_pages: int = 100
    max_wait_s: float = 60
    max_run_time_s: float | None = None
    rate_limit_retries: int = 3


@dataclass
class Tally:
    """Counters of one stream in one run."""

    pages: int = 0
    records: int = 0
    duplicates: int = 0


@dataclass
class Outcome:
    """How a stream's part of the run ended: `caught-up`, `page-limit`,
    `time-limit`, `waiting` (`seconds`, `rate_limited`) or `failed` (`error`)."""

    kind: str
    seconds: int = 0
    rate_limited: bool = False
    error: CollectError | None = None


class _StreamFailed(Exception):
    def __init__(self, error: CollectError) -> None:
        self.error = error


class RecentKeys:
    """A bounded set of keys: the oldest go first."""

    def __init__(self, cap: int) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._cap = cap

    def insert(self, key: str) -> bool:
        """True when `key` was not there."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self._cap:
            self._keys.popitem(last=False)
        return True


class Driver:
    """Runs streams page by page; see the module docs."""

    def __init__(self, io, auth: Auth, checkpoint: Checkpoint, budget: Budget | None = None) -> None:  # noqa: ANN001
        self.io, self.auth, self.checkpoint = io, auth, checkpoint
        self.budget = budget or Budget()
        self.started_ms = io.now_ms()
        self._pause_until_ms = 0
        self.results: list[tuple[str, Tally, Outcome]] = []

    def run(self, stream: Stream) -> Outcome:
        """Runs one stream to its outcome. A `CollectError` escapes only when
        the whole run must stop (a refused commit, a failed login)."""
        tally, seen = Tally(), RecentKeys(SEEN_CAP)
        try:
            outcome = self._pages(stream, tally, seen)
        except _StreamFailed as f:
            self.io.log(Level.ERROR, f"{stream.name}: {f.error}")
            outcome = Outcome("failed", error=f.error)
        self.results.append((stream.name, tally, outcome))
        return outcome

    def finish(self) -> Summary:
        """The run summary, or raises an error naming every failed stream (of
        the first failure's kind) and what the other streams delivered."""
        summary = Summary(caught_up=True)
        notes, failed = [], []
        for name, tally, outcome in self.results:
            summary.pages += tally.pages
            summary.duplicates += tally.duplicates
            summary.caught_up &= outcome.kind in ("caught-up", "waiting")
            if outcome.kind == "failed":
                failed.append((name, outcome.error))
            else:
                notes.append(describe(name, tally, outcome))
        if not failed:
            summary.note = "; ".join(notes)
            return summary
        listed = "; ".join(f"`{n}` ({e})" for n, e in failed)
        message = f"{len(failed)} of {len(self.results)} streams failed: {listed}"
        if notes:
            message += f". The others were delivered: {'; '.join(notes)}"
        raise failed[0][1].with_message(message)

    def _pages(self, stream: Stream, tally: Tally, seen: RecentKeys) -> Outcome:
        max_wait_ms = int(self.budget.max_wait_s * 1000)
        for _ in range(self.budget.max_pages):
            now = self.io.now_ms()
            limit = self.budget.max_run_time_s
            if limit is not None and now - self.started_ms >= limit * 1000:
                return Outcome("time-limit")
            state = self.checkpoint.state(stream.name)
            if state.not_before_ms is not None:
                remaining = max(0, state.not_before_ms - now)
                if remaining > max_wait_ms:
                    return Outcome("waiting", seconds=-(-remaining // 1000))
                self.io.sleep(remaining / 1000)
            try:
                cursor = stream.load_cursor(state.cursor)
            except ConfigError as e:
                raise _StreamFailed(e) from None
            except (ValueError, TypeError, KeyError) as e:
                raise _StreamFailed(
                    ConfigError(
                        f"the checkpoint of stream `{stream.name}` is not understood by this collector version ({e}); "
                        "reset the source's checkpoint to start over"
                    )
                ) from None
            done = self._page(stream, state, cursor, tally, seen)
            if done is not None:
                return done
        return Outcome("page-limit")

    def _page(self, stream: Stream, before: StreamState, cursor: Any, tally: Tally, seen: RecentKeys) -> Outcome | None:
        limited = 0
        while True:
            cx = Ctx(self.io, self.auth)
            try:
                request = stream.request(cx, cursor)
            except CollectError as e:
                raise _StreamFailed(e) from None
            if request is None:
                return Outcome("caught-up")
            request.max_wait(self.budget.max_wait_s)
            self._pace()
            response = self._send(request)
            now = self.io.now_ms()
            wait = stream.rate_limited(response, now)
            if wait is not None:
                limited += 1
                wait = wait if wait > 0 else float(1 << min(limited, 6))
                if wait > self.budget.max_wait_s or limited > self.budget.rate_limit_retries:
                    state = StreamState(before.cursor, before.inflight, before.last_page, now + int(wait * 1000))
                    self._commit_state(stream.name, state)
                    if wait > self.budget.max_wait_s:
                        seconds = max(1, int(wait))
                        self.io.log(Level.WARN, f"{stream.name}: rate limited; the vendor asks to wait {seconds}s")
                        return Outcome("waiting", seconds=seconds, rate_limited=True)
                    raise _StreamFailed(
                        RateLimitedError(
                            f"stream `{stream.name}`: the vendor kept rate limiting ({limited} answers in a row were "
                            f"HTTP {response.status}, each after the host's own retries)"
                        )
                    )
                self.io.log(
                    Level.WARN, f"{stream.name}: rate limited (HTTP {response.status}), retry {limited} in {int(wait)}s"
                )
                self.io.sleep(wait)
                continue
            if not response.is_success():
                raise _StreamFailed(stream.error(response))
            try:
                page = stream.parse(Ctx(self.io, self.auth), cursor, response)
            except CollectError as e:
                raise _StreamFailed(e) from None
            return self._deliver(stream.name, before, page, tally, seen)

    def _deliver(self, name: str, before: StreamState, page: Page, tally: Tally, seen: RecentKeys) -> Outcome | None:
        for why in page.skipped:
            self.io.log(Level.WARN, f"{name}: skipped an item that is not a record: {why}")
        now = self.io.now_ms()
        not_before = now + int(page.wait_s * 1000) if page.wait_s else None
        state = StreamState(page.next, False, before.last_page, not_before)
        records = []
        for key, record in page.records:
            if seen.insert(key):
                records.append(record)
            else:
                tally.duplicates += 1
        self.io.emit(records)
        self._commit_state(name, state)
        if records:
            tally.pages += 1
            tally.records += len(records)
            self.io.log(Level.INFO, f"{name}: delivered {len(records)} records")
        return None if page.more else Outcome("caught-up")

    def _send(self, request: Request) -> Response:
        """Sends with credentials; one re-authentication after a 401. A failed
        login ends the run; no response at all fails the stream."""
        retry = request.copy() if request.authenticated else None
        response = self._send_once(request)
        if retry is not None and response.status == 401 and self.auth.invalidate():
            self.io.log(Level.INFO, "HTTP 401: the token was refused; authenticating again")
            response = self._send_once(retry)
        remaining = next((v for v in (response.headers.get_int(h) for h in ("ratelimit-remaining", "x-ratelimit-remaining")) if v is not None), None)
        if remaining == 0:
            now = self.io.now_ms()
            reset = next((v for v in (response.headers.get_int(h) for h in ("ratelimit-reset", "x-ratelimit-reset")) if v is not None), None)
            wait = 1.0 if reset is None else reset_wait(reset, now)
            self._pause_until_ms = now + int(wait * 1000)
        return response

    def _send_once(self, request: Request) -> Response:
        authorized = self.auth.authorize(self.io, request)  # a failure ends the run
        try:
            return self.io.send(authorized)
        except CollectError as e:  # HttpError: no response
            raise _StreamFailed(e) from None

    def _pace(self) -> None:
        pause = self._pause_until_ms - self.io.now_ms()
        if pause > 0:
            self.io.sleep(min(pause / 1000, self.budget.max_wait_s))
        self._pause_until_ms = 0

    def _commit_state(self, name: str, state: StreamState) -> None:
        # A default state means "never started": keep the checkpoint free of it.
        if state.is_default():
            self.checkpoint.streams.pop(name, None)
        else:
            self.checkpoint.streams[name] = state
        self.io.commit(self.checkpoint.to_json())


def describe(name: str, tally: Tally, outcome: Outcome) -> str:
    """One stream's part of the run note, e.g. `events: 3 pages, 60 records, caught up`."""
    s = f"{name}: "
    if tally.pages > 0:
        s += f"{tally.pages} page{'' if tally.pages == 1 else 's'}, {tally.records} records, "
    if tally.duplicates > 0:
        s += f"{tally.duplicates} duplicates dropped, "
    if outcome.kind == "caught-up":
        s += "caught up"
    elif outcome.kind == "page-limit":
        s += "page limit reached, more waiting"
    elif outcome.kind == "time-limit":
        s += "run time limit reached, more may be waiting"
    elif outcome.kind == "waiting" and not outcome.rate_limited:
        s += f"waiting {outcome.seconds}s (vendor wait hint)"
    elif outcome.kind == "waiting":
        s += f"rate limited, next call in {outcome.seconds}s"
    else:
        s += f"failed: {outcome.error}"
    return s


def collect_streams(io, auth: Auth, checkpoint: Checkpoint, budget: Budget, streams: list[Stream]) -> Summary:  # noqa: ANN001
    """Runs every stream in order (see `Driver`) and returns the summary."""
    driver = Driver(io, auth, checkpoint, budget)
    for stream in streams:
        driver.run(stream)
    return driver.finish()


__all__ = ["Budget", "Ctx", "Driver", "Outcome", "Page", "Stream", "Tally", "collect_streams", "describe"]
