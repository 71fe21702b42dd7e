"""The error a collector run ends with: one class per WIT `collect-error` case.

Raise one from anywhere in a run; the component adapter turns it into the
matching `collect-error` variant. Any other exception is a crash: its message
and location are reported to the host (`log.panicked`) and the run traps, as a
Rust panic does.
"""

from __future__ import annotations


class CollectError(Exception):
    """Why a run failed. `kind` is the WIT case name; the host adds the source
    and collector names, so messages need not repeat them."""

    kind = "vendor"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.message == self.message  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.kind, self.message))

    def with_message(self, message: str) -> "CollectError":
        """An error of the same kind (the plain class of that kind: an
        `HttpError` gives a `TransportError`) with another message."""
        return KINDS[self.kind](message)


class ConfigError(CollectError):
    """A setting or secret is missing or malformed."""

    kind = "config"


class AuthError(CollectError):
    """The vendor rejected the credentials or their scope (HTTP 401/403)."""

    kind = "auth"


class NotFoundError(CollectError):
    """The vendor does not know a configured resource (HTTP 404)."""

    kind = "not-found"


class RateLimitedError(CollectError):
    """The vendor kept rate limiting past the collector's retry budget."""

    kind = "rate-limited"


class VendorError(CollectError):
    """The vendor sent a response the collector cannot use."""

    kind = "vendor"


class TransportError(CollectError):
    """The request could not be sent or no response arrived."""

    kind = "transport"


class HostError(CollectError):
    """A host import (`sink` or `checkpoint`) refused an operation."""

    kind = "host"


#: Every kind by its WIT case name.
KINDS = {c.kind: c for c in (ConfigError, AuthError, NotFoundError, RateLimitedError, VendorError, TransportError, HostError)}
