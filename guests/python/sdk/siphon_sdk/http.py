"""A small blocking HTTP client over `wasi:http/outgoing-handler`.

This module owns the portable part: the request builder, URL splitting and
query encoding, the response type and the errors; the transport that talks
to the host is in `_wasi.py`. It mirrors the Rust SDK's `http` module.

The host retries 429/502/503/504 (honouring `Retry-After`) before a response
reaches the guest, so this client never retries: whatever status a collector
sees is final for that call. `Retry` tells the host how far to go.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from .errors import AuthError, CollectError, NotFoundError, RateLimitedError, TransportError, VendorError

#: Header that carries a `Retry` policy to the host (removed before sending).
RETRY_HEADER = "siphon-retry"
#: Header that carries `Request.max_wait` to the host (removed before sending).
MAX_WAIT_HEADER = "siphon-max-wait"

_HEX = frozenset(b"0123456789abcdefABCDEF")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class Retry(enum.Enum):
    """How far the host may retry a request before the collector sees the answer."""

    #: 429, 502, 503, 504 and refused connections, with backoff. Right for idempotent reads.
    HOST = None
    #: Only 429 and refused connections (consume-once requests, quota 503s).
    RATE_LIMITED_ONLY = "rate-limited-only"
    #: Nothing: the collector sees the first answer.
    NEVER = "never"


class HttpErrorKind(enum.Enum):
    """Broad classes of `HttpError`."""

    DENIED = "denied"
    INVALID_REQUEST = "invalid-request"
    DNS = "dns"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    TLS = "tls"
    PROTOCOL = "protocol"
    UNSUPPORTED = "unsupported"
    OTHER = "other"


class HttpError(TransportError):
    """No response arrived (denied, DNS, connection, timeout, TLS, protocol).
    A response with an error status is not an `HttpError`. Uncaught, it ends
    the run as a `transport` error, as `?` on an `HttpError` does in Rust."""

    def __init__(self, kind: HttpErrorKind, message: str) -> None:
        super().__init__(message)
        self.http_kind = kind


def percent_encode(text: str) -> str:
    """Percent-encodes everything except RFC 3986 unreserved characters."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


def form_encode(pairs: Iterable[tuple[str, str]]) -> str:
    """`application/x-www-form-urlencoded` text of `pairs` (space as `%20`)."""
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)


def percent_decode(text: str) -> str:
    """Decodes `%XX` escapes and `+` (as a space); invalid escapes are kept."""
    raw = text.encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(raw):
        b = raw[i]
        if b == ord("+"):
            out.append(0x20)
        elif b == ord("%") and i + 2 < len(raw) and all(c in _HEX for c in raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 2
        else:
            out.append(b)
        i += 1
    return out.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Target:
    """Where a request goes, in the parts `wasi:http` takes."""

    https: bool
    authority: str
    path_with_query: str

    @staticmethod
    def parse(url: str) -> "Target":
        def invalid(why: str) -> HttpError:
            return HttpError(HttpErrorKind.INVALID_REQUEST, f"invalid URL `{url}`: {why}")

        lower = url[:8].lower()
        if lower.startswith("https://"):
            https, rest = True, url[8:]
        elif lower.startswith("http://"):
            https, rest = False, url[7:]
        else:
            raise invalid("only http:// and https:// URLs are supported")
        rest = rest.split("#", 1)[0]
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        authority, tail = rest[:cut], rest[cut:]
        if not authority:
            raise invalid("no host")
        if "@" in authority:
            raise invalid("credentials in the URL are not supported; send them in a header")
        if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in authority):
            raise invalid("the host contains whitespace")
        if not tail:
            path = "/"
        elif tail.startswith("?"):
            path = "/" + tail
        else:
            path = tail
        return Target(https, authority, path)


class Request:
    """A request under construction. Builder methods change it and return it;
    `copy()` before changing a request that is also used elsewhere."""

    def __init__(self, method: str, url: str) -> None:
        self.method = method.upper()
        self._url = url
        self._query: list[tuple[str, str]] = []
        self.headers: list[tuple[str, str]] = []
        self.body: bytes | None = None
        self.authenticated = True
        self._deferred_error: str | None = None

    @classmethod
    def get(cls, url: str) -> "Request":
        """A `GET` request."""
        return cls("GET", url)

    @classmethod
    def post(cls, url: str) -> "Request":
        """A `POST` request; add the body with `body`, `form` or `json`."""
        return cls("POST", url)

    def copy(self) -> "Request":
        """An independent copy."""
        r = Request(self.method, self._url)
        r._query, r.headers, r.body = list(self._query), list(self.headers), self.body
        r.authenticated, r._deferred_error = self.authenticated, self._deferred_error
        return r

    def header(self, name: str, value: str) -> "Request":
        """Adds a header; repeated names are sent as repeated fields."""
        self.headers.append((name, value))
        return self

    def query(self, key: str, value: str) -> "Request":
        """Appends `key=value` to the query, percent-encoding both."""
        self._query.append((key, str(value)))
        return self

    def with_body(self, content_type: str, body: bytes | str) -> "Request":
        """Sets the body and its `Content-Type`."""
        self.headers.append(("content-type", content_type))
        self.body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        return self

    def form(self, pairs: Iterable[tuple[str, str]]) -> "Request":
        """An `application/x-www-form-urlencoded` body from `pairs`."""
        return self.with_body("application/x-www-form-urlencoded", form_encode(pairs))

    def json(self, value: object) -> "Request":
        """A JSON body (`Content-Type: application/json`)."""
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as e:
            self._deferred_error = f"cannot serialise the JSON body: {e}"
            return self
        return self.with_body("application/json", text)

    def bearer(self, token: str) -> "Request":
        """Adds `Authorization: Bearer <token>`."""
        return self.header("authorization", f"Bearer {token}")

    def retry(self, policy: Retry) -> "Request":
        """Tells the host how to retry this request (see `Retry`)."""
        self.headers = [(k, v) for k, v in self.headers if k.lower() != RETRY_HEADER]
        if policy.value is not None:
            self.headers.append((RETRY_HEADER, policy.value))
        return self

    def max_wait(self, seconds: float) -> "Request":
        """The longest wait the host may spend on one retry; a longer
        `Retry-After` is handed back to the collector."""
        self.headers = [(k, v) for k, v in self.headers if k.lower() != MAX_WAIT_HEADER]
        self.headers.append((MAX_WAIT_HEADER, str(int(seconds))))
        return self

    def unauthenticated(self) -> "Request":
        """A request that must carry no credentials (pre-signed URLs)."""
        self.authenticated = False
        return self

    def header_value(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive)."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def url(self) -> str:
        """The full URL with the query parameters added by `query`."""
        parts = [self._url]
        for i, (k, v) in enumerate(self._query):
            parts.append("?" if i == 0 and "?" not in self._url else "&")
            parts.append(f"{percent_encode(k)}={percent_encode(v)}")
        return "".join(parts)

    def target(self) -> Target:
        """`url()` split into the parts `wasi:http` takes."""
        if self._deferred_error is not None:
            raise HttpError(HttpErrorKind.INVALID_REQUEST, self._deferred_error)
        return Target.parse(self.url())

    def path(self) -> str:
        """The URL's path, e.g. `/v1.0/events`."""
        try:
            return self.target().path_with_query.split("?", 1)[0]
        except HttpError:
            return ""

    def query_value(self, key: str) -> str | None:
        """The value of query parameter `key` (decoded)."""
        for k, v in self._query:
            if k == key:
                return v
        url = self._url.split("#", 1)[0]
        if "?" not in url:
            return None
        for pair in url.split("?", 1)[1].split("&"):
            if "=" in pair:
                k, v = pair.split("=", 1)
                if percent_decode(k) == key:
                    return percent_decode(v)
        return None

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url()})"


class Headers:
    """Response header fields with case-insensitive lookup."""

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields = [(k, v) for k, v in fields]

    def append(self, name: str, value: str) -> None:
        """Appends a field."""
        self._fields.append((name, value))

    def get(self, name: str) -> str | None:
        """The first value of `name`, trimmed."""
        lower = name.lower()
        return next((v.strip() for k, v in self._fields if k.lower() == lower), None)

    def get_int(self, name: str) -> int | None:
        """The first value of `name` as a whole number ≥ 0, or None."""
        v = self.get(name)
        return int(v) if v is not None and v.isdigit() else None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"


@dataclass
class Response:
    """A complete response: status, headers and the whole body."""

    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def is_success(self) -> bool:
        """True for 2xx."""
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        """Shorthand for `headers.get(name)`."""
        return self.headers.get(name)

    def text(self) -> str:
        """The body as UTF-8 text; a `VendorError` when it is not."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise VendorError(f"HTTP {self.status} response body is not UTF-8: {e}") from None

    def json(self) -> object:
        """The body parsed as JSON; a `VendorError` naming the start of the body."""
        try:
            return json.loads(self.text())
        except ValueError as e:
            raise VendorError(
                f"HTTP {self.status} response is not the expected JSON ({e}); body starts: {self.body_excerpt(200)}"
            ) from None

    def error_for_status(self, what: str) -> "Response":
        """Itself for 2xx; else raises the error the status means: 401/403 →
        `AuthError`, 404 → `NotFoundError`, 429 → `RateLimitedError`, other →
        `VendorError`, with the vendor's message."""
        if self.is_success():
            return self
        raise self.status_error(what)

    def status_error(self, what: str) -> CollectError:
        """The error `error_for_status` raises for this (non-2xx) response."""
        message = f"{what}: HTTP {self.status}: {self.vendor_message()}"
        if self.status in (401, 403):
            return AuthError(message)
        if self.status == 404:
            return NotFoundError(message)
        if self.status == 429:
            return RateLimitedError(message)
        return VendorError(message)

    def vendor_message(self) -> str:
        """The vendor's own error text: a JSON body's `message`,
        `error_description`, `errorDesc`, `messageDescription` (IBM), `error`,
        `detail` or `title`, else the start of the body on one line."""
        if not self.body.strip():
            return "empty body"
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            value = None
        if isinstance(value, dict):
            for key in ("message", "error_description", "errorDesc", "messageDescription", "error", "detail", "title"):
                if isinstance(value.get(key), str):
                    return excerpt(value[key].encode("utf-8"), 300)
        return excerpt(self.body, 300)

    def retry_after(self, now_ms: int) -> float | None:
        """Seconds the vendor asks to wait: `Retry-After` (seconds), else
        `X-RateLimit-Reset` / `ratelimit-reset` (seconds, epoch s or epoch ms)."""
        seconds = self.headers.get_int("retry-after")
        if seconds is not None:
            return float(seconds)
        for name in ("x-ratelimit-reset", "ratelimit-reset"):
            reset = self.headers.get_int(name)
            if reset is not None:
                return reset_wait(reset, now_ms)
        return None

    def body_excerpt(self, max_chars: int) -> str:
        """At most `max_chars` characters of the body on one line."""
        return excerpt(self.body, max_chars)


def reset_wait(value: int, now_ms: int) -> float:
    """Seconds a rate-limit reset value means at `now_ms`: ≥ 10^12 is epoch ms,
    ≥ 10^9 epoch seconds (zero when past); smaller values are seconds."""
    if value >= 1_000_000_000_000:
        ms = max(0, value - now_ms)
    elif value >= 1_000_000_000:
        ms = max(0, value * 1000 - now_ms)
    else:
        ms = value * 1000
    return ms / 1000


def excerpt(data: bytes, max_chars: int) -> str:
    """At most `max_chars` characters of `data` on one line, `…` when cut."""
    text = data.decode("utf-8", errors="replace").strip()
    out = "".join(" " if (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0) else c for c in text[:max_chars])
    return out + "…" if len(text) > max_chars else out
