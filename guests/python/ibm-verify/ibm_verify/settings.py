"""The source's settings and secrets, each declared once, exactly as the Rust
collector (`guests/ibm-verify/src/settings.rs`) declares them: same keys,
descriptions, defaults and messages, so `siphon inspect` and `siphon check`
cannot tell the two apart."""

from __future__ import annotations

from dataclasses import dataclass

from siphon_sdk.config import Secret, Setting, parse


def _event_types(text: str) -> list[str] | None:
    """`all` (None: every type) or a list of names; quotes are refused (the
    collector adds them)."""
    names = parse.names(text)
    if any(n.lower() == "all" for n in names):
        if len(names) > 1:
            raise ValueError("`all` cannot be combined with other types")
        return None
    return names


BASE_URL = Setting(
    "base_url",
    "Tenant URL, e.g. https://acme.verify.ibm.com (legacy *.ice.ibmcloud.com tenants work too)",
    None,
    parse.base_url,
)
EVENT_TYPES = Setting(
    "event_types",
    'Event types to collect, e.g. ["authentication", "sso", "management"]; `all` = every type',
    "all",
    _event_types,
)
LOOKBACK_HOURS = Setting(
    "lookback_hours",
    "First run only: collect events indexed this many hours back (Verify keeps 90 days)",
    "24",
    lambda v: parse.u64_in(v, 0, 90 * 24),
)
PAGE_SIZE = Setting("page_size", "Events per request, 1..10000 (the API maximum)", "1000", lambda v: parse.u64_in(v, 1, 10_000))
MAX_PAGES = Setting(
    "max_pages_per_run", "Pages fetched per run; the rest waits for the next run", "100", lambda v: parse.u64_in(v, 1, 100_000)
)
CLIENT_ID = Secret("client_id", "API client ID (Security > API access)")
CLIENT_SECRET = Secret("client_secret", "API client secret")

#: Every declaration, in the order `siphon inspect` lists them.
DECLARED = [BASE_URL, EVENT_TYPES, LOOKBACK_HOURS, PAGE_SIZE, MAX_PAGES, CLIENT_ID, CLIENT_SECRET]


@dataclass(frozen=True)
class Config:
    """The validated configuration of one run."""

    base_url: str
    #: None = every event type.
    event_types: list[str] | None
    lookback_ms: int
    page_size: int
    max_pages: int
    client_id: str
    client_secret: str

    @classmethod
    def read(cls, io) -> "Config":  # noqa: ANN001
        """Every setting and secret, validated; the first problem is a
        `ConfigError` naming its key."""
        return cls(
            base_url=BASE_URL.get(io),
            event_types=EVENT_TYPES.get(io),
            lookback_ms=LOOKBACK_HOURS.get(io) * 3_600_000,
            page_size=PAGE_SIZE.get(io),
            max_pages=MAX_PAGES.get(io),
            client_id=CLIENT_ID.get(io),
            client_secret=CLIENT_SECRET.get(io),
        )

    def __repr__(self) -> str:  # holds the secret
        return f"Config(base_url={self.base_url!r}, page_size={self.page_size}, …)"
