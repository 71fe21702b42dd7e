"""The page loop against a simulated vendor, crashes included."""

import json
import unittest

from siphon_sdk import AuthError, RateLimitedError, TransportError, VendorError
from siphon_sdk.auth import ClientCredentials, NoAuth, Session
from siphon_sdk.checkpoint import Checkpoint
from siphon_sdk.driver import Budget, Page, Stream, collect_streams
from siphon_sdk.http import Headers, HttpError, HttpErrorKind, Request, Response
from siphon_sdk.jsontext import Object, field_str
from siphon_sdk.testing import FakeIo, crash_everywhere, run


class Vendor:
    """`GET /items/<stream>?after=<n>`: pages of 3 items after position n; a
    token endpoint; queued faults."""

    def __init__(self, items: dict[str, int]) -> None:
        self.items = {s: [f'{{"id":"{s}-{i}","n":{i}, "big":18446744073709551616}}' for i in range(n)] for s, n in items.items()}
        self.faults: list[Response] = []
        self.tokens = 0
        self.valid_token = "Bearer t1"

    def __call__(self, r: Request) -> Response:
        if r.path() == "/token":
            self.tokens += 1
            self.valid_token = f"Bearer t{self.tokens}"
            return Response(200, body=json.dumps({"access_token": f"t{self.tokens}", "expires_in": 3600}).encode())
        if self.faults:
            return self.faults.pop(0)
        if r.header_value("authorization") not in (None, self.valid_token):
            return Response(401, body=b'{"message":"expired"}')
        stream = r.path().rsplit("/", 1)[1]
        after = int(r.query_value("after") or 0)
        page = self.items[stream][after : after + 3]
        return Response(200, body=('{"items": [' + ", ".join(page) + "]}").encode())


class Items(Stream):
    def __init__(self, name: str) -> None:
        self.name = name

    def load_cursor(self, value: object) -> int:
        return 0 if value is None else int(value)  # type: ignore[arg-type]

    def request(self, cx, cursor: int) -> Request:  # noqa: ANN001
        return Request.get(f"https://v.example/items/{self.name}").query("after", str(cursor))

    def parse(self, cx, cursor: int, response: Response) -> Page:  # noqa: ANN001
        records = Object.parse(response.body).records("items")
        return Page([(field_str(r, "id"), r) for r in records], cursor + len(records), more=len(records) == 3)


def collect(io, budget: Budget = Budget(), auth=None) -> object:  # noqa: ANN001
    cp = Checkpoint.parse(io.checkpoint(), 1)
    return collect_streams(io, auth or NoAuth(), cp, budget, [Items("a"), Items("b")])


class DriverTest(unittest.TestCase):
    def test_pages_to_the_end_byte_exact_with_a_commit_per_page(self) -> None:
        vendor = Vendor({"a": 7, "b": 3})
        io = FakeIo(vendor)
        s = run(io, collect)
        self.assertEqual(io.delivered, [r.replace(", ", ",") for r in vendor.items["a"] + vendor.items["b"]])
        self.assertEqual((s.pages, s.caught_up, s.note), (4, True, "a: 3 pages, 7 records, caught up; b: 1 page, 3 records, caught up"))
        self.assertEqual(io.cursor, '{"version":1,"streams":{"a":{"cursor":7},"b":{"cursor":3}}}')
        self.assertEqual(len(io.commits), 5)  # a: 3, 3, 1 (short: the end); b: 3, then an empty page

    def test_the_next_run_collects_only_new_items(self) -> None:
        vendor = Vendor({"a": 4, "b": 1})
        io = FakeIo(vendor)
        run(io, collect)
        vendor.items["a"].append('{"id":"a-new"}')
        before = len(io.delivered)
        run(io, collect)
        self.assertEqual(io.delivered[before:], ['{"id":"a-new"}'])

    def test_a_crash_at_any_step_delivers_every_item_exactly_once(self) -> None:
        vendor = Vendor({"a": 8, "b": 4})
        want = [r.replace(", ", ",") for r in vendor.items["a"] + vendor.items["b"]]
        tried = crash_everywhere(lambda: FakeIo(Vendor({"a": 8, "b": 4})), collect, lambda io: want)
        self.assertGreaterEqual(tried, 20)

    def test_a_short_429_is_waited_out_and_a_long_one_ends_the_stream_until_later(self) -> None:
        vendor = Vendor({"a": 2, "b": 2})
        vendor.faults = [Response(429, Headers([("Retry-After", "5")]))]
        io = FakeIo(vendor)
        run(io, collect)
        self.assertEqual((io.slept_s, len(io.delivered)), ([5.0], 4))
        vendor = Vendor({"a": 2, "b": 2})
        vendor.faults = [Response(429, Headers([("Retry-After", "600")]))]
        io = FakeIo(vendor)
        s = run(io, collect)
        self.assertEqual(s.note, "a: rate limited, next call in 600s; b: 1 page, 2 records, caught up")
        self.assertEqual(json.loads(io.cursor)["streams"]["a"], {"not_before_ms": io.clock_ms + 600_000})
        s = run(io, collect)  # still waiting: no request for `a`
        self.assertEqual(s.note, "a: waiting 600s (vendor wait hint); b: caught up")
        io.clock_ms += 600_000
        run(io, collect)
        self.assertEqual(len(io.delivered), 4)

    def test_rate_limiting_past_the_retries_fails_the_stream_only(self) -> None:
        vendor = Vendor({"a": 2, "b": 2})
        vendor.faults = [Response(429)] * 4
        io = FakeIo(vendor)
        e = run(io, collect)
        self.assertIsInstance(e, RateLimitedError)
        self.assertIn("1 of 2 streams failed: `a` (rate-limited: stream `a`: the vendor kept rate limiting (4 answers", e.message)
        self.assertIn("The others were delivered: b: 1 page, 2 records, caught up", e.message)
        self.assertEqual(len(io.delivered), 2)

    def test_a_vendor_error_fails_with_its_kind_and_keeps_the_cursor(self) -> None:
        vendor = Vendor({"a": 5, "b": 0})
        io = FakeIo(vendor)
        run(io, lambda io: collect(io, Budget(max_pages=1)))
        cursor = io.cursor
        vendor.faults = [Response(500, body=b"<html>oops</html>")]
        e = run(io, collect)
        self.assertIsInstance(e, VendorError)
        self.assertIn("stream `a`: HTTP 500: <html>oops</html>", e.message)
        self.assertEqual(json.loads(io.cursor)["streams"]["a"], json.loads(cursor)["streams"]["a"])

    def test_no_response_fails_the_stream_as_transport_and_the_others_go_on(self) -> None:
        vendor = Vendor({"a": 2, "b": 2})

        def handler(r: Request) -> Response:
            if "/items/a" in r.path():
                raise HttpError(HttpErrorKind.CONNECTION, "v.example closed the connection while reading the response body")
            return vendor(r)

        io = FakeIo(handler)
        e = run(io, collect)
        self.assertEqual(type(e), TransportError)
        self.assertIn("`a` (transport: v.example closed the connection", e.message)
        self.assertEqual(len(io.delivered), 2)

    def test_the_page_budget_ends_a_stream_with_more_waiting(self) -> None:
        io = FakeIo(Vendor({"a": 9, "b": 0}))
        s = run(io, lambda io: collect(io, Budget(max_pages=2)))
        self.assertEqual(s.note, "a: 2 pages, 6 records, page limit reached, more waiting; b: caught up")
        self.assertFalse(s.caught_up)

    def test_duplicates_within_a_run_are_dropped(self) -> None:
        vendor = Vendor({"a": 3, "b": 0})
        vendor.items["a"] += [vendor.items["a"][0]]
        io = FakeIo(vendor)
        s = run(io, collect)
        self.assertEqual((s.duplicates, len(io.delivered)), (1, 3))

    def test_a_refused_token_is_renewed_once_then_auth(self) -> None:
        vendor = Vendor({"a": 4, "b": 0})
        io = FakeIo(vendor)
        auth = Session(ClientCredentials("https://v.example/token", "id", "secret", 3600))
        vendor.valid_token = "never"
        run(io, lambda io: collect(io, auth=auth))
        self.assertEqual(vendor.tokens, 1)  # the first token is accepted
        vendor.valid_token = "revoked"
        vendor.faults = [Response(401), Response(401)]
        e = run(io, lambda io: collect(io, auth=Session(ClientCredentials("https://v.example/token", "id", "secret", 3600))))
        self.assertIsInstance(e, AuthError)
        self.assertTrue(any("authenticating again" in m for _, m in io.logs))

    def test_a_login_refusal_ends_the_run_without_the_secret(self) -> None:
        io = FakeIo(lambda r: Response(401, body=b'{"error":"invalid_client","error_description":"bad secret"}'))
        auth = Session(ClientCredentials("https://v.example/token", "id", "S3CRET", 3600))
        e = run(io, lambda io: collect(io, auth=auth))
        self.assertEqual(e, AuthError("the token endpoint https://v.example/token refused the client credentials (HTTP 401: bad secret)"))
        self.assertEqual([r.path() for r in io.requests], ["/token"])
        self.assertEqual(io.requests[0].body, b"grant_type=client_credentials&client_id=id&client_secret=S3CRET")


if __name__ == "__main__":
    unittest.main()
