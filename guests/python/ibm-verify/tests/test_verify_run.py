"""Whole runs of the Python Verify collector against a simulated tenant: the
same behaviour the Rust collector's `run_tests.rs` pins down."""

import json
import unittest

from siphon_sdk import AuthError, ConfigError, RateLimitedError, Summary, VendorError
from siphon_sdk.http import Headers, Response
from siphon_sdk.testing import FakeIo, crash_everywhere, run
from verify_tenant import HOUR, Tenant, error, fake

import ibm_verify


def collect(io: FakeIo) -> object:
    return run(io, ibm_verify.run)


def events_requests(io: FakeIo) -> list:
    return [r for r in io.requests if r.path() == "/v1.0/events"]


def cursor(io: FakeIo) -> dict:
    return json.loads(io.cursor)["streams"]["events"]["cursor"]


def tenant(n: int) -> Tenant:
    t = Tenant()
    t.add(n, 1_718_000_000_000 - HOUR, 1000)
    return t


class RunTest(unittest.TestCase):
    def test_pages_to_the_end_byte_exact_then_a_second_run_collects_only_new_events(self) -> None:
        t = tenant(50)
        io = fake(t)
        s = collect(io)
        self.assertEqual(io.delivered, t.all())
        self.assertEqual((s.pages, s.caught_up, s.note), (3, True, "events: 3 pages, 50 records, caught up"))
        last = t.ordered()[-1]
        self.assertEqual(cursor(io), {"id": last["id"], "indexed_at": last["indexed_at"]})
        self.assertIn('"n":18446744073709551617', io.delivered[0] + "".join(io.delivered))
        self.assertIn("jd\\u00f6e", io.delivered[0])
        t.add(5, io.clock_ms - 10, 1)
        io.clock_ms += 1000
        before = len(io.delivered)
        collect(io)
        self.assertEqual(io.delivered[before:], t.all()[50:])

    def test_the_first_run_looks_back_lookback_hours_and_pins_that_window(self) -> None:
        t = Tenant()
        io = fake(t, lookback_hours="2")
        s = collect(io)
        self.assertEqual(s.note, "events: caught up")
        self.assertEqual(events_requests(io)[0].query_value("from"), str(io.clock_ms - 2 * HOUR))
        self.assertEqual(json.loads(io.cursor), {"version": 1, "streams": {"events": {"cursor": {"indexed_at": io.clock_ms - 2 * HOUR}}}})
        self.assertTrue(any("First run: collecting events indexed since 2024-06-10T04:13:20Z" in m for _, m in io.logs))
        io.clock_ms += HOUR
        collect(io)
        self.assertEqual(events_requests(io)[-1].query_value("from"), str(io.clock_ms - 3 * HOUR))

    def test_late_indexed_events_and_events_not_yet_visible_are_collected_once_they_are_indexed(self) -> None:
        t = tenant(10)
        io = fake(t)
        t.add(3, io.clock_ms - 5000, 1, late_by=5 * HOUR)  # indexed hours after their time
        t.add(4, io.clock_ms + 60_000, 1)  # indexed in a minute
        collect(io)
        self.assertEqual(len(io.delivered), 13)
        io.clock_ms += 120_000
        collect(io)
        self.assertEqual(io.delivered, t.all())

    def test_equal_indexed_at_values_across_a_page_boundary_are_neither_skipped_nor_repeated(self) -> None:
        t = Tenant()
        t.add(45, 1_718_000_000_000 - HOUR, 0)  # one indexed_at for all, ids decide
        io = fake(t)
        collect(io)
        self.assertEqual(io.delivered, t.all())
        self.assertEqual(len(set(io.delivered)), 45)

    def test_a_crash_at_any_step_delivers_every_event_exactly_once(self) -> None:
        def make() -> FakeIo:
            return fake(tenant(47))

        tried = crash_everywhere(make, ibm_verify.run, lambda io: io.handler.all())
        self.assertGreaterEqual(tried, 12)

    def test_bad_credentials_fail_as_auth_before_any_events_request_and_keep_the_cursor(self) -> None:
        t = tenant(5)
        io = fake(t)
        collect(io)
        before = io.cursor
        t.secret = "rotated"
        e = collect(io)
        self.assertIsInstance(e, AuthError)
        self.assertIn("refused the client credentials (HTTP 401: The client credentials are not valid.)", e.message)
        self.assertNotIn("verify-secret", e.message)
        self.assertEqual(io.cursor, before)

    def test_a_403_says_which_permission_is_missing_and_keeps_the_cursor(self) -> None:
        t = tenant(5)
        t.entitled = False
        io = fake(t)
        e = collect(io)
        self.assertIsInstance(e, AuthError)
        self.assertIn('give it the "Read reports" (or "Manage reports") permission under Security > API access', e.message)
        self.assertEqual(io.delivered, [])

    def test_an_expired_token_is_renewed_once_and_a_second_401_fails_as_auth(self) -> None:
        t = tenant(30)
        io = fake(t)
        t.token_lifetime_ms = 0  # every token is dead on arrival at the next call
        e = collect(io)
        self.assertIsInstance(e, AuthError)
        self.assertEqual(t.logins, 2)
        self.assertTrue(any("authenticating again" in m for _, m in io.logs))

    def test_tokens_are_renewed_ahead_of_expiry_not_per_page(self) -> None:
        t = tenant(100)
        io = fake(t)
        collect(io)
        self.assertEqual(t.logins, 1)

    def test_a_429_is_honoured_and_a_5xx_fails_the_run_with_the_cursor_kept(self) -> None:
        t = tenant(30)
        io = fake(t)
        t.faults = [Response(429, Headers([("Retry-After", "7")]))]
        collect(io)
        self.assertEqual(io.slept_s, [7.0])
        self.assertEqual(io.delivered, t.all())
        t.add(30, io.clock_ms - 100, 1)
        io.clock_ms += 1000
        before = io.cursor
        t.faults = [Response(503, body=b"<html>Service Unavailable</html>")]
        e = collect(io)
        self.assertIsInstance(e, VendorError)
        self.assertIn("GET /v1.0/events: HTTP 503: <html>Service Unavailable</html>", e.message)
        self.assertEqual(io.cursor, before)
        t.faults = [Response(429)] * 4
        self.assertIsInstance(collect(io), RateLimitedError)

    def test_a_400_from_the_api_is_a_config_error_naming_the_setting(self) -> None:
        t = tenant(5)
        io = fake(t)
        t.faults = [error(400, "The [size] parameter is not valid.")]
        e = collect(io)
        self.assertIsInstance(e, ConfigError)
        self.assertIn("GET /v1.0/events refused parameter `size` (from setting `page_size`): The [size] parameter is not valid.", e.message)

    def test_event_types_select_what_is_collected(self) -> None:
        t = tenant(20)
        io = fake(t, event_types='["sso", "token"]')
        collect(io)
        self.assertEqual(events_requests(io)[0].query_value("event_type"), '"sso","token"')
        self.assertEqual(io.delivered, t.all({"sso", "token"}))

    def test_max_pages_per_run_bounds_a_run_and_the_next_one_goes_on(self) -> None:
        t = tenant(70)
        io = fake(t, max_pages_per_run="2")
        s = collect(io)
        self.assertEqual((len(io.delivered), s.caught_up), (40, False))
        self.assertEqual(s.note, "events: 2 pages, 40 records, page limit reached, more waiting")
        collect(io)
        self.assertEqual(io.delivered, t.all())

    def test_a_bad_setting_or_missing_secret_fails_before_any_request(self) -> None:
        for key, value, message in [
            ("page_size", "20000", 'setting `page_size` = "20000" is invalid: must be between 1 and 10000'),
            ("event_types", '["all", "sso"]', 'setting `event_types` = "[\\"all\\", \\"sso\\"]" is invalid: `all` cannot be combined with other types'),
            ("base_url", "acme.verify.ibm.com", 'setting `base_url` = "acme.verify.ibm.com" is invalid: must start with https://'),
        ]:
            io = fake(tenant(1), **{key: value})
            self.assertEqual(collect(io), ConfigError(message))
            self.assertEqual(io.requests, [])
        io = fake(tenant(1))
        del io.secrets["client_secret"]
        self.assertEqual(collect(io), ConfigError("secret `client_secret` is required"))

    def test_a_checkpoint_of_another_version_is_refused_with_a_way_out(self) -> None:
        io = fake(tenant(1))
        io.cursor = '{"version":2,"streams":{}}'
        e = collect(io)
        self.assertIsInstance(e, ConfigError)
        self.assertIn("reset the source's checkpoint to start over", e.message)
        io.cursor = '{"version":1,"streams":{"events":{"cursor":{"id":"x"}}}}'
        e = collect(io)
        self.assertIn("the checkpoint of stream `events` is not understood by this collector version (missing field `indexed_at`)", e.message)

    def test_a_checkpoint_the_rust_collector_wrote_is_continued_exactly(self) -> None:
        t = tenant(50)
        ordered = t.ordered()
        mid = ordered[24]
        io = fake(t)
        # What guests/ibm-verify commits after delivering the first 25 events.
        io.cursor = '{"version":1,"streams":{"events":{"cursor":{"id":"%s","indexed_at":%d}}}}' % (mid["id"], mid["indexed_at"])
        collect(io)
        self.assertEqual(io.delivered, t.all()[25:])
        self.assertEqual(events_requests(io)[0].query_value("after_id"), mid["id"])
        last = ordered[-1]
        self.assertEqual(io.cursor, '{"version":1,"streams":{"events":{"cursor":{"id":"%s","indexed_at":%d}}}}' % (last["id"], last["indexed_at"]))


class InfoTest(unittest.TestCase):
    def test_info_lists_every_setting_with_its_default(self) -> None:
        info = ibm_verify.IbmVerify.info()
        self.assertEqual((info.name, info.vendor), ("ibm-verify-events", "IBM Security Verify (Events API v1.0)"))
        self.assertEqual(
            [(s.name, s.required, s.secret, s.default_value) for s in info.settings],
            [
                ("base_url", True, False, None),
                ("event_types", False, False, "all"),
                ("lookback_hours", False, False, "24"),
                ("page_size", False, False, "1000"),
                ("max_pages_per_run", False, False, "100"),
                ("client_id", True, True, None),
                ("client_secret", True, True, None),
            ],
        )

    def test_summary_type(self) -> None:
        self.assertIsInstance(collect(fake(tenant(1))), Summary)


if __name__ == "__main__":
    unittest.main()
