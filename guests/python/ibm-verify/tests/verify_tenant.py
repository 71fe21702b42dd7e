"""A simulated IBM Security Verify tenant for native tests (vendor-apis.md §3):
client credentials with expiring tokens, `GET /v1.0/events` in `indexed_at`
order with strictly-after `(indexed_at, id)` search_after, the 24 h default
window, the management/sso/authentication default filter, events invisible
until their `indexed_at` has passed, ASCII-escaped bodies, queued faults."""

from __future__ import annotations

import json
import uuid
from typing import Callable

from siphon_sdk.http import Headers, Request, Response
from siphon_sdk.testing import FakeIo

TYPES = ["authentication", "sso", "management", "token"]
DEFAULT_TYPES = {"management", "sso", "authentication"}
BASE = "https://acme.verify.ibm.com"
HOUR = 3_600_000


def error(status: int, description: str) -> Response:
    return Response(status, body=json.dumps({"messageId": "CSIAQ0000E", "messageDescription": description}).encode())


class Tenant:
    def __init__(self) -> None:
        self.events: list[dict] = []
        self.now: Callable[[], int] = lambda: 0
        self.tokens: dict[str, int] = {}  # token -> expiry (ms)
        self.token_lifetime_ms = 7199 * 1000
        self.entitled = True
        self.faults: list[Response] = []
        self.secret = "verify-secret"
        self.logins = 0
        self.seq = 0

    def add(self, n: int, first: int, step: int, late_by: int = 0, types: list[str] | None = None) -> None:
        """`n` events indexed `step` ms apart from `first`, ids in random order."""
        for i in range(n):
            self.seq += 1
            at = first + i * step
            self.events.append(
                {
                    "id": str(uuid.UUID(int=(self.seq * 0x9E3779B97F4A7C15) % 2**128)),
                    "time": at - late_by,
                    "indexed_at": at,
                    "event_type": (types or TYPES)[self.seq % len(types or TYPES)],
                    "data": {"username": "jdöe", "n": 18446744073709551616 + self.seq},
                }
            )

    def text(self, e: dict) -> str:
        return json.dumps(e, separators=(",", ":"))  # ASCII-escaped, as Verify sends

    def ordered(self) -> list[dict]:
        return sorted(self.events, key=lambda e: (e["indexed_at"], e["id"]))

    def all(self, types: set[str] | None = None) -> list[str]:
        return [self.text(e) for e in self.ordered() if types is None or e["event_type"] in types]

    def __call__(self, r: Request) -> Response:
        now = self.now()
        if r.path() == "/v1.0/endpoint/default/token":
            form = dict(p.split("=", 1) for p in (r.body or b"").decode().split("&"))
            if form.get("client_id") != "verify-id" or form.get("client_secret") != self.secret:
                return Response(401, body=b'{"error":"invalid_client","error_description":"The client credentials are not valid."}')
            self.logins += 1
            token = f"tok{self.logins}"
            self.tokens[token] = now + self.token_lifetime_ms
            return Response(200, body=json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 7199}).encode())
        if self.faults:
            return self.faults.pop(0)
        auth = (r.header_value("authorization") or "").removeprefix("Bearer ")
        if self.tokens.get(auth, 0) <= now:
            return error(401, "The access token is not valid.")
        if not self.entitled:
            return error(403, "The client is not authorized to access events.")
        size = r.query_value("size") or "50"
        if not size.isdigit() or not 1 <= int(size) <= 10_000:
            return error(400, "The [size] parameter is not valid.")
        if r.query_value("all_events") == "yes":
            types = None
        elif r.query_value("event_type"):
            names = r.query_value("event_type").split(",")
            if not all(n.startswith('"') and n.endswith('"') for n in names):
                return error(400, "The event_type parameter is not valid.")
            types = {n.strip('"') for n in names}
        else:
            types = DEFAULT_TYPES
        assert r.query_value("range_type") == "indexed_at" and r.query_value("sort_order") == "asc"
        start = int(r.query_value("from") or now - 24 * HOUR)
        after = r.query_value("after_time"), r.query_value("after_id")
        page = [
            e
            for e in self.ordered()
            if start <= e["indexed_at"] <= now
            and (types is None or e["event_type"] in types)
            and (after[1] is None or (e["indexed_at"], e["id"]) > (int(after[0]), after[1]))
        ][: int(size)]
        search_after = {"total_events": min(len(page), 10_000), "max_size_limit": "false"}
        if page:
            search_after.update(time=str(page[-1]["time"]), id=page[-1]["id"])
        body = '{"response":{"events":{"search_after":' + json.dumps(search_after) + ',"events":[' + ",".join(self.text(e) for e in page) + "]}}}"
        return Response(200, Headers([("content-type", "application/json")]), body.encode())


def fake(tenant: Tenant, **settings: str) -> FakeIo:
    io = FakeIo(tenant)
    tenant.now = io.now_ms
    io.with_settings(**{"base_url": BASE, "page_size": "20", "lookback_hours": "48", **settings})
    io.with_secrets(client_id="verify-id", client_secret="verify-secret")
    return io
