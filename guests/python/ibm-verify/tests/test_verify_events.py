"""The events request, envelope, cursor and refusals (as `events_tests.rs`)."""

import unittest

from siphon_sdk import AuthError, ConfigError, NotFoundError, RateLimitedError, VendorError
from siphon_sdk.http import Response

from ibm_verify.events import Events, refused
from ibm_verify.settings import Config


def events(types: list[str] | None = None, size: int = 1000) -> Events:
    return Events(Config("https://acme.verify.ibm.com", types, 0, size, 100, "id", "secret"))


def envelope(items: list[str], search_after: str = '{"total_events":2,"max_size_limit":"false"}') -> bytes:
    return ('{"response":{"events":{"search_after":' + search_after + ',"events":[' + ",".join(items) + "]}}}").encode()


class EventsTest(unittest.TestCase):
    def test_the_first_request_asks_for_every_event_type_in_indexed_order_from_the_window_start(self) -> None:
        r = events().request(None, {"indexed_at": 1_700_000_000_000})
        self.assertEqual(
            r.url(),
            "https://acme.verify.ibm.com/v1.0/events?all_events=yes&range_type=indexed_at&sort_order=asc&size=1000&from=1700000000000",
        )
        self.assertEqual(r.header_value("accept"), "application/json")

    def test_later_requests_continue_after_the_last_event_and_quote_event_types(self) -> None:
        r = events(["sso", "token"], 20).request(None, {"indexed_at": 5, "id": "a-1"})
        self.assertEqual(
            r.url(),
            "https://acme.verify.ibm.com/v1.0/events?event_type=%22sso%22%2C%22token%22&range_type=indexed_at&sort_order=asc"
            "&size=20&from=5&after_time=5&after_id=a-1",
        )

    def test_a_page_becomes_byte_exact_records_keyed_by_id_and_the_cursor_moves_to_the_last_event(self) -> None:
        a = '{"id":"a","time":1,"indexed_at":10,"data":{"n":18446744073709551616,"u":"\\u00e9"}}'
        b = '{ "id" : "b", "time" : 2, "indexed_at" : 20 }'
        page = events(size=2).parse(None, {"indexed_at": 0}, Response(200, body=envelope([a, b], '{"time":"2","id":"b"}')))
        self.assertEqual(page.records, [("a", a), ("b", '{"id":"b","time":2,"indexed_at":20}')])
        self.assertEqual((page.next, page.more), ({"indexed_at": 20, "id": "b"}, True))

    def test_search_after_is_the_fallback_for_an_event_without_indexed_at(self) -> None:
        page = events().parse(None, {"indexed_at": 0}, Response(200, body=envelope(['{"id":"a"}'], '{"time":"1718012349001","id":"a"}')))
        self.assertEqual((page.next, page.more), ({"indexed_at": 1718012349001, "id": "a"}, False))
        with self.assertRaises(VendorError) as caught:
            events().parse(None, {"indexed_at": 0}, Response(200, body=envelope(['{"time":1}'])))
        self.assertIn("cannot continue after it", caught.exception.message)

    def test_empty_pages_in_any_shape_keep_the_cursor(self) -> None:
        for body in [envelope([]), b'{"response":{"events":{"search_after":{"total_events":0}}}}', b'{"response":{}}', b'{"response":{"events":null}}', b"", b" \n"]:
            page = events().parse(None, {"indexed_at": 7, "id": "x"}, Response(200, body=body))
            self.assertEqual((page.records, page.next, page.more), ([], {"indexed_at": 7, "id": "x"}, False), body)

    def test_events_without_an_id_are_keyed_by_their_content(self) -> None:
        page = events().parse(None, {"indexed_at": 0}, Response(200, body=envelope(['{"indexed_at":3,"x":1}'], '{"time":"3","id":"z"}')))
        self.assertEqual(page.records[0][0], '{"indexed_at":3,"x":1}')

    def test_a_body_that_is_not_the_envelope_is_a_vendor_error(self) -> None:
        with self.assertRaises(VendorError) as caught:
            events().parse(None, {"indexed_at": 0}, Response(200, body=b'{"message":"maintenance"}'))
        self.assertEqual(caught.exception.message, "GET /v1.0/events answered without `response`: maintenance")
        for body in [b"<html></html>", b'{"response":{"events":[1]}}']:
            with self.assertRaises(VendorError, msg=body):
                events().parse(None, {"indexed_at": 0}, Response(200, body=body))

    def test_a_400_is_a_config_error_naming_the_parameter_and_its_setting(self) -> None:
        def error(body: str) -> object:
            return events().error(Response(400, body=body.encode()))

        self.assertEqual(
            error('{"messageId":"CSIAQ0159E","messageDescription":"The [size] parameter is not valid."}'),
            ConfigError("GET /v1.0/events refused parameter `size` (from setting `page_size`): The [size] parameter is not valid."),
        )
        self.assertIn("parameter `after_id` (from the checkpoint; reset it to start over)", error('{"messageDescription":"bad after_id"}').message)
        self.assertIn("parameter `event_type` (from setting `event_types`)", error('{"messageDescription":"event_type from x"}').message)
        self.assertEqual(refused("something odd"), "the request (check settings `event_types` and `page_size`)")

    def test_a_403_is_an_auth_error_that_names_the_missing_permission(self) -> None:
        e = events().error(Response(403, body=b'{"messageDescription":"Forbidden"}'))
        self.assertIsInstance(e, AuthError)
        self.assertIn('"Read reports"', e.message)

    def test_other_statuses_keep_their_usual_meaning(self) -> None:
        for status, cls in [(401, AuthError), (404, NotFoundError), (429, RateLimitedError), (500, VendorError)]:
            self.assertIsInstance(events().error(Response(status)), cls)


if __name__ == "__main__":
    unittest.main()
