"""The README's complete example collector ("Collectors in Python"), kept
here verbatim so that `example_test.py` can run it: if this file changes, the
README must change with it."""

from siphon_sdk import Collector, HostIo, Info, Secret, Setting, export, parse, problems
from siphon_sdk.auth import ClientCredentials, Session
from siphon_sdk.checkpoint import Checkpoint
from siphon_sdk.driver import Budget, Page, Stream, collect_streams
from siphon_sdk.http import Request
from siphon_sdk.jsontext import Object, field_str, field_u64

BASE_URL = Setting("base_url", "Tenant URL, e.g. https://acme.example", None, parse.base_url)
LOOKBACK = Setting("lookback_hours", "First run: hours back", "24", parse.u64)
CLIENT_ID = Secret("client_id", "API client id")
CLIENT_SECRET = Secret("client_secret", "API client secret")
DECLARED = [BASE_URL, LOOKBACK, CLIENT_ID, CLIENT_SECRET]


class AuditLog(Stream):
    """`GET /v1/audit?since=<ms>&page_token=<t>`: `{"items":[…],"next_page_token":…}`, oldest first."""

    name = "audit"

    def __init__(self, base: str, lookback_ms: int) -> None:
        self.base, self.lookback_ms = base, lookback_ms

    def load_cursor(self, value):
        return value or {}

    def request(self, cx, at):
        at.setdefault("since_ms", cx.now_ms() - self.lookback_ms)
        r = Request.get(f"{self.base}/v1/audit").query("since", str(at["since_ms"]))
        return r.query("page_token", at["page_token"]) if at.get("page_token") else r

    def parse(self, cx, at, response):
        body = Object.parse(response.body)
        records = body.records_or_empty("items")  # the vendor's bytes, one line each
        newest = max([field_u64(r, "time") or 0 for r in records] + [at.get("newest_ms", 0)])
        token = body.str("next_page_token")
        following = {"since_ms": at["since_ms"], "newest_ms": newest}
        if token:
            following["page_token"] = token
        else:  # the query is done: the next one starts after the newest item
            following["since_ms"] = newest + 1 if newest else at["since_ms"]
        return Page([(field_str(r, "id") or r, r) for r in records], following, more=token is not None)


class AcmeAudit(Collector):
    @classmethod
    def info(cls):
        return Info("acme-audit", "0.1.0", "Acme audit API v1", [d.spec() for d in DECLARED])

    @classmethod
    def validate(cls):
        return problems(DECLARED, HostIo())  # what `siphon check` reports

    @classmethod
    def collect(cls):
        io = HostIo()
        base = BASE_URL.get(io)
        login = ClientCredentials(f"{base}/oauth/token", CLIENT_ID.get(io), CLIENT_SECRET.get(io), 3600)
        checkpoint = Checkpoint.parse(io.checkpoint(), 1)
        stream = AuditLog(base, LOOKBACK.get(io) * 3_600_000)
        return collect_streams(io, Session(login), checkpoint, Budget(), [stream])


WitWorld = export(AcmeAudit)
