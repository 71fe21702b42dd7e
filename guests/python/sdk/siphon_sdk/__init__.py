"""Write siphon collectors in Python.

A collector is one vendor's auth, paging and checkpoint logic, built by
componentize-py into a WebAssembly component for the
`siphon:collector/collector` world (`wit/`), the same world Rust collectors
implement: the host cannot tell them apart. This package owns everything
between that world and a vendor module, as the Rust SDK (`guests/sdk`) does:

| Module | Owns |
|---|---|
| `io` | the I/O seam: `HostIo` in the component, `testing.FakeIo` natively |
| `driver` | the page loop: per-page commit, in-run dedup, waits and rate limits, budgets, the run note |
| `auth` | OAuth2 client credentials (form, Basic or JSON; renewed ahead of expiry; one re-auth after a 401), static headers |
| `config` | settings and secrets declared once: the spec `info` reports and the validated value |
| `http` | requests and responses (`error_for_status`: 401/403 auth, 404 not-found, 429 rate-limited, else vendor) |
| `jsontext` | byte-exact records and field lookups in vendor JSON |
| `checkpoint` | the driver's checkpoint JSON, shared with the Rust SDK |
| `component` | `Collector` and `export`: the component's exports, crashes reported with their message |
"""

from .component import Collector, export
from .config import Secret, Setting, SettingSpec, parse, problems
from .errors import (
    AuthError,
    CollectError,
    ConfigError,
    HostError,
    NotFoundError,
    RateLimitedError,
    TransportError,
    VendorError,
)
from .io import HostIo, Io
from .log import Level
from .summary import Info, Summary

__all__ = [
    "AuthError",
    "CollectError",
    "Collector",
    "ConfigError",
    "HostError",
    "HostIo",
    "Info",
    "Io",
    "Level",
    "NotFoundError",
    "RateLimitedError",
    "Secret",
    "Setting",
    "SettingSpec",
    "Summary",
    "TransportError",
    "VendorError",
    "export",
    "parse",
    "problems",
]
