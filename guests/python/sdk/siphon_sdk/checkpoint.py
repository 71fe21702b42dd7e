"""The driver's checkpoint: the same JSON the Rust SDK's driver writes.

`{"version":1,"scope":…,"streams":{"<name>":{"cursor":…,"inflight":true,
"last_page":{…},"not_before_ms":…}}}`: a schema version, an optional scope,
and per stream its own cursor plus the driver's fields, each left out when
empty. Cursor objects are written with sorted keys (serde_json's `Value`
map), so a checkpoint written by a Python collector reads byte for byte like
one written by the Rust collector of the same vendor, and either continues
the other's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ConfigError, HostError


@dataclass
class StreamState:
    """The driver's part of a stream's checkpoint."""

    #: The stream's own cursor (None before its first page).
    cursor: Any = None
    #: A consume-once request may have been served and not delivered.
    inflight: bool = False
    #: The fingerprint of the last delivered page of a consume-once stream.
    last_page: dict | None = None
    #: No request before this time (epoch ms): a vendor wait or rate limit.
    not_before_ms: int | None = None

    def to_json_value(self) -> dict:
        out: dict = {}
        if self.cursor is not None:
            out["cursor"] = _sorted(self.cursor)
        if self.inflight:
            out["inflight"] = True
        if self.last_page is not None:
            out["last_page"] = self.last_page
        if self.not_before_ms is not None:
            out["not_before_ms"] = self.not_before_ms
        return out

    @classmethod
    def from_json_value(cls, value: dict) -> "StreamState":
        if not isinstance(value, dict):
            raise ValueError("a stream's state is not an object")
        nb = value.get("not_before_ms")
        if nb is not None and (not isinstance(nb, int) or isinstance(nb, bool) or nb < 0):
            raise ValueError("`not_before_ms` is not a whole number")
        inflight = value.get("inflight", False)
        if not isinstance(inflight, bool):
            raise ValueError("`inflight` is not a boolean")
        return cls(value.get("cursor"), inflight, value.get("last_page"), nb)

    def is_default(self) -> bool:
        return self == StreamState()


@dataclass
class Checkpoint:
    """The whole committed cursor of a collector that uses the driver."""

    version: int
    scope: str | None = None
    streams: dict[str, StreamState] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None, version: int, migrate: Callable[[int, dict], "Checkpoint | None"] | None = None) -> "Checkpoint":
        """Parses committed text of schema `version`; None (first run) gives an
        empty checkpoint. Another version is handed to `migrate`."""
        if text is None:
            return cls(version)
        try:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            raise _not_understood(e) from None
        found = value.get("version")
        found = found if isinstance(found, int) and not isinstance(found, bool) else 0
        if found != version:
            migrated = migrate(found, value) if migrate else None
            if migrated is None:
                raise ConfigError(
                    f"the checkpoint has version {found}, this collector reads version {version}; "
                    "reset the source's checkpoint to start over"
                )
            return migrated
        try:
            scope = value.get("scope")
            if scope is not None and not isinstance(scope, str):
                raise ValueError("`scope` is not a string")
            streams = value.get("streams")
            streams = {} if streams is None else streams
            if not isinstance(streams, dict):
                raise ValueError("`streams` is not an object")
            return cls(version, scope, {k: StreamState.from_json_value(v) for k, v in streams.items()})
        except ValueError as e:
            raise _not_understood(e) from None

    def to_json(self) -> str:
        """Compact JSON, in the Rust driver's field order."""
        out: dict = {"version": self.version}
        if self.scope is not None:
            out["scope"] = self.scope
        out["streams"] = {name: self.streams[name].to_json_value() for name in sorted(self.streams)}
        try:
            return json.dumps(out, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise HostError(f"cannot serialise the checkpoint: {e}") from None

    def state(self, name: str) -> StreamState:
        """A copy of stream `name`'s state (the default before its first page)."""
        s = self.streams.get(name)
        return StreamState() if s is None else StreamState(s.cursor, s.inflight, s.last_page, s.not_before_ms)


def _sorted(value: Any) -> Any:
    """`value` with every object's keys sorted, as serde_json's `Value` holds them."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _not_understood(e: Exception) -> ConfigError:
    return ConfigError(
        f"the committed checkpoint is not understood by this collector version ({e}); "
        "reset the source's checkpoint to start over"
    )
