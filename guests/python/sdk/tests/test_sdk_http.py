"""Requests, URLs, responses and what a status means (as the Rust SDK's `http`)."""

import unittest

from siphon_sdk.errors import AuthError, NotFoundError, RateLimitedError, VendorError
from siphon_sdk.http import Headers, HttpError, HttpErrorKind, Request, Response, Retry, Target, excerpt, percent_decode, reset_wait


class RequestTest(unittest.TestCase):
    def test_target_splits_url_parts(self) -> None:
        t = Request.get("https://tenant.goskope.com:8443/api/v2/x?a=1#frag").target()
        self.assertEqual(t, Target(True, "tenant.goskope.com:8443", "/api/v2/x?a=1"))
        self.assertEqual(Request.get("HTTP://127.0.0.1:9000").target(), Target(False, "127.0.0.1:9000", "/"))
        self.assertEqual(Request.get("http://h?x=1").target().path_with_query, "/?x=1")

    def test_target_rejects_bad_urls(self) -> None:
        for url in ["ftp://h/x", "https:///x", "https://user:pw@h/", "tenant.goskope.com/x", "https://a b/"]:
            with self.assertRaises(HttpError, msg=url) as caught:
                Request.get(url).target()
            self.assertEqual(caught.exception.http_kind, HttpErrorKind.INVALID_REQUEST)

    def test_query_is_percent_encoded_and_appended(self) -> None:
        self.assertEqual(Request.get("https://h/p").query("index", "a b&c=d").query("op", "next").url(), "https://h/p?index=a%20b%26c%3Dd&op=next")
        self.assertEqual(Request.get("https://h/p?x=1").query("y", "é").url(), "https://h/p?x=1&y=%C3%A9")
        r = Request.get("https://h/p?x=a%20b").query("y", '"sso"')
        self.assertEqual((r.query_value("x"), r.query_value("y"), r.query_value("z")), ("a b", '"sso"', None))
        self.assertEqual(r.path(), "/p")
        self.assertEqual(percent_decode("%zz%41+%4"), "%zzA %4")

    def test_retry_and_max_wait_headers_replace_earlier_ones(self) -> None:
        r = Request.get("https://h/").retry(Retry.NEVER).retry(Retry.RATE_LIMITED_ONLY).max_wait(90).max_wait(60.5)
        self.assertEqual(r.headers, [("siphon-retry", "rate-limited-only"), ("siphon-max-wait", "60")])
        self.assertEqual(Request.get("https://h/").retry(Retry.NEVER).retry(Retry.HOST).headers, [])

    def test_copy_is_independent(self) -> None:
        a = Request.get("https://h/").header("x", "1")
        b = a.copy().header("y", "2")
        self.assertEqual((len(a.headers), len(b.headers)), (1, 2))

    def test_json_body_sets_content_type(self) -> None:
        r = Request.post("https://h/").json({"a": 1, "é": "ü"})
        self.assertEqual(r.body, '{"a":1,"é":"ü"}'.encode())
        self.assertEqual(r.header_value("Content-Type"), "application/json")
        with self.assertRaises(HttpError):
            Request.post("https://h/").json({"a": object()}).target()


class ResponseTest(unittest.TestCase):
    def test_headers_are_case_insensitive(self) -> None:
        h = Headers([("RateLimit-Remaining", " 0 "), ("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")])
        self.assertEqual((h.get("ratelimit-remaining"), h.get_int("RATELIMIT-REMAINING"), h.get_int("retry-after"), h.get("x")), ("0", 0, None, None))

    def test_status_meanings(self) -> None:
        for status, cls in [(401, AuthError), (403, AuthError), (404, NotFoundError), (429, RateLimitedError), (500, VendorError)]:
            with self.assertRaises(cls) as caught:
                Response(status, body=b'{"message":"nope"}').error_for_status("alert type `dlp`")
            self.assertEqual(caught.exception.message, f"alert type `dlp`: HTTP {status}: nope")
        self.assertEqual(Response(204).error_for_status("x").status, 204)

    def test_vendor_message_reads_common_error_fields(self) -> None:
        def r(body: str) -> str:
            return Response(400, body=body.encode()).vendor_message()

        self.assertEqual(r('{"error":"invalid_client","error_description":"bad secret"}'), "bad secret")
        self.assertEqual(r('{"messageId":"CSIAQ0159E","messageDescription":"The [size] parameter is not valid."}'), "The [size] parameter is not valid.")
        self.assertEqual(r("<html>\n503</html>"), "<html> 503</html>")
        self.assertEqual(r(" "), "empty body")

    def test_json_error_names_status_and_body(self) -> None:
        with self.assertRaises(VendorError) as caught:
            Response(200, body=b"<html>\nnope</html>").json()
        self.assertIn("HTTP 200", caught.exception.message)
        self.assertIn("<html> nope", caught.exception.message)

    def test_retry_after_and_reset_headers(self) -> None:
        now = 1_700_000_000_000
        self.assertEqual(Response(429, Headers([("Retry-After", "7")])).retry_after(now), 7.0)
        self.assertEqual(Response(429, Headers([("X-RateLimit-Reset", "1700000030")])).retry_after(now), 30.0)
        self.assertEqual(Response(429, Headers([("ratelimit-reset", "1700000002500")])).retry_after(now), 2.5)
        self.assertEqual(Response(429).retry_after(now), None)
        self.assertEqual(reset_wait(1_600_000_000, now), 0)

    def test_excerpt_is_one_line_and_bounded(self) -> None:
        self.assertEqual(excerpt(b"  ab\ncd  ", 10), "ab cd")
        self.assertEqual(excerpt("ééé".encode(), 2), "éé…")


if __name__ == "__main__":
    unittest.main()
