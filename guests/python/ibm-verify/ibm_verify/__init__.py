"""siphon collector for IBM Security Verify events (`GET /v1.0/events`), in Python.

The Python twin of `guests/ibm-verify` (Rust): same collector name, settings,
requests, checkpoint and messages, so either continues a checkpoint the other
wrote. `settings` declares and validates the settings; `events` owns the
request, the envelope, the `(indexed_at, id)` cursor and what each refusal
means. This module wires them to the SDK: a client-credentials session on the
tenant's token endpoint, the first-run window, the driver.
"""

from __future__ import annotations

import time

from siphon_sdk import Collector, HostIo, Info, Level, Summary, problems
from siphon_sdk.auth import ClientCredentials, Session
from siphon_sdk.checkpoint import Checkpoint
from siphon_sdk.driver import Budget, collect_streams

from . import settings
from .events import STREAM, Events
from .settings import Config

VERSION = "0.1.0"
#: The checkpoint schema: `{"version":1,"streams":{"events":{"cursor":{"id":…,"indexed_at":…}}}}`.
CHECKPOINT_VERSION = 1
#: Verify tokens live about 2 h (`expires_in` 7199); used only when the answer leaves it out.
TOKEN_LIFETIME_S = 7_199


class IbmVerify(Collector):
    """The IBM Security Verify events collector."""

    @classmethod
    def info(cls) -> Info:
        return Info("ibm-verify-events", VERSION, "IBM Security Verify (Events API v1.0)", [d.spec() for d in settings.DECLARED])

    @classmethod
    def validate(cls) -> list[str]:
        return problems(settings.DECLARED, HostIo())

    @classmethod
    def collect(cls) -> Summary:
        return run(HostIo())


def run(io) -> Summary:  # noqa: ANN001
    """One collection run."""
    cfg = Config.read(io)
    checkpoint = Checkpoint.parse(io.checkpoint(), CHECKPOINT_VERSION)
    state = checkpoint.streams.get(STREAM)
    if state is None or state.cursor is None:
        # Pinned before the driver starts, so that whatever it commits first
        # (a page, or a rate-limit pause) keeps this window.
        start = max(0, io.now_ms() - cfg.lookback_ms)
        io.log(Level.INFO, f"First run: collecting events indexed since {rfc3339(start)}")
        checkpoint.streams.setdefault(STREAM, checkpoint.state(STREAM)).cursor = {"indexed_at": start}
    login = ClientCredentials(f"{cfg.base_url}/v1.0/endpoint/default/token", cfg.client_id, cfg.client_secret, TOKEN_LIFETIME_S)
    budget = Budget(max_pages=cfg.max_pages)
    return collect_streams(io, Session(login), checkpoint, budget, [Events(cfg)])


def rfc3339(ms: int) -> str:
    """`2024-05-01T12:00:00Z` (whole seconds, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))
