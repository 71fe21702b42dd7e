"""The component adapter and `HostIo` over a fake of the generated bindings."""

import dataclasses
import unittest
from unittest import mock

import fake_bindings

fake_bindings.install()

from siphon_sdk import (  # noqa: E402
    AuthError,
    Collector,
    ConfigError,
    HostIo,
    Info,
    Level,
    Secret,
    Setting,
    Summary,
    TransportError,
    export,
    parse,
)
from siphon_sdk.errors import KINDS, CollectError, HostError  # noqa: E402
from siphon_sdk.http import HttpError, HttpErrorKind, Request  # noqa: E402

PAGE = Setting("page_size", "Page", "100", lambda v: parse.u64_in(v, 1, 100))
KEY = Secret("api_key", "Key")
OTHER = Secret("v1_key", "Key of API 1.0", required_when=("api", "1.0"))


class Acme(Collector):
    raise_in_collect: BaseException | None = None

    @classmethod
    def info(cls) -> Info:
        return Info("acme", "1.2.3", "Acme API", [PAGE.spec(), KEY.spec(), OTHER.spec()])

    @classmethod
    def validate(cls) -> list[str]:
        from siphon_sdk import problems

        return problems([PAGE, KEY], HostIo())

    @classmethod
    def collect(cls) -> Summary:
        if cls.raise_in_collect is not None:
            raise cls.raise_in_collect
        return Summary(pages=2, duplicates=1, caught_up=True, note="acme: 2 pages")


class AdapterTest(unittest.TestCase):
    def setUp(self) -> None:
        self.host = fake_bindings.install()
        self.world = export(Acme)()
        Acme.raise_in_collect = None

    def test_info_maps_every_setting_spec(self) -> None:
        info = self.world.info()
        self.assertEqual((info.name, info.version, info.vendor), ("acme", "1.2.3", "Acme API"))
        page, key, other = info.settings
        self.assertEqual((page.name, page.required, page.secret, page.default_value), ("page_size", False, False, "100"))
        self.assertEqual((key.required, key.secret, key.default_value, key.required_when), (True, True, None, None))
        self.assertFalse(other.required)
        self.assertEqual((other.required_when.setting, other.required_when.value), ("api", "1.0"))

    def test_bindings_of_a_world_without_required_when_get_five_fields(self) -> None:
        t = fake_bindings.sys.modules["wit_world.imports.siphon_collector_types"]
        fields = {"name": str, "description": str, "required": bool, "secret": bool, "default_value": object}
        five = dataclasses.dataclass(type("SettingSpec", (), {"__annotations__": fields}))
        with mock.patch.object(t, "SettingSpec", five):
            info = export(Acme)().info()
        self.assertEqual([(s.name, s.required) for s in info.settings], [("page_size", False), ("api_key", True), ("v1_key", False)])

    def test_validate_reads_the_configuration(self) -> None:
        self.host.settings["page_size"] = "500"
        self.assertEqual(
            self.world.validate(),
            ['setting `page_size` = "500" is invalid: must be between 1 and 100', "secret `api_key` is required"],
        )

    def test_a_summary_becomes_the_run_summary(self) -> None:
        s = self.world.collect()
        self.assertEqual((s.pages, s.duplicates, s.caught_up, s.note), (2, 1, True, "acme: 2 pages"))

    def test_every_error_kind_becomes_its_collect_error_case(self) -> None:
        cases = {"config": "Config", "auth": "Auth", "not-found": "NotFound", "rate-limited": "RateLimited", "vendor": "Vendor", "transport": "Transport", "host": "Host"}
        self.assertEqual(set(cases), set(KINDS))
        for kind, case in cases.items():
            Acme.raise_in_collect = KINDS[kind]("it went wrong")
            with self.assertRaises(fake_bindings.Err) as caught:
                self.world.collect()
            self.assertEqual(type(caught.exception.value).__name__, f"CollectError_{case}")
            self.assertEqual(caught.exception.value.value, "it went wrong")
        self.assertEqual(self.host.panics, [])

    def test_an_http_error_left_uncaught_is_a_transport_error(self) -> None:
        Acme.raise_in_collect = HttpError(HttpErrorKind.TIMEOUT, "no response from a.example within the host's timeout")
        with self.assertRaises(fake_bindings.Err) as caught:
            self.world.collect()
        self.assertEqual(type(caught.exception.value).__name__, "CollectError_Transport")

    def test_a_crash_is_reported_with_its_message_and_place_then_traps(self) -> None:
        def boom() -> Summary:
            return {}["missing"]  # type: ignore[return-value]

        with mock.patch.object(Acme, "collect", classmethod(lambda cls: boom())):
            with self.assertRaises(KeyError):
                self.world.collect()
        (message,) = self.host.panics
        self.assertTrue(message.startswith("KeyError: 'missing' (at "), message)
        self.assertIn("test_sdk_component.py:", message)
        self.assertIn(" in boom)", message)

    def test_a_collect_error_from_info_is_a_crash(self) -> None:
        with mock.patch.object(Acme, "info", classmethod(lambda cls: (_ for _ in ()).throw(ConfigError("bad")))):
            with self.assertRaises(ConfigError):
                self.world.info()
        self.assertEqual(len(self.host.panics), 1)
        self.assertIn("ConfigError: config: bad", self.host.panics[0])


class HostIoTest(unittest.TestCase):
    def setUp(self) -> None:
        self.host = fake_bindings.install()
        self.io = HostIo()

    def test_config_clock_random_and_log_reach_the_imports(self) -> None:
        self.host.settings["a"], self.host.secrets["s"] = "1", "x"
        self.assertEqual((self.io.setting("a"), self.io.setting("b"), self.io.secret("s")), ("1", None, "x"))
        self.assertEqual(self.io.source_name(), "fake-source")
        self.assertEqual(self.io.now_ms(), 1_718_000_000_123)
        self.io.sleep(1.5)
        self.assertEqual(self.host.slept_ns, [1_500_000_000])
        self.assertEqual(self.io.now_ms(), 1_718_000_001_623)
        self.assertEqual(self.io.random_bytes(3), b"\x00\x01\x02")
        for level in Level:
            self.io.log(level, f"at {level.name}")
        self.assertEqual(self.host.logs, [(lvl.name, f"at {lvl.name}") for lvl in Level])

    def test_records_and_cursors_pass_through_unchanged(self) -> None:
        self.io.emit([])  # nothing to send: no call
        self.io.emit(['{"id":18446744073709551616,"u":"\\u00e9é"}'])
        self.io.commit('{"version":1}')
        self.assertEqual(self.host.emitted, [['{"id":18446744073709551616,"u":"\\u00e9é"}']])
        self.assertEqual(self.io.checkpoint(), '{"version":1}')

    def test_refusals_become_host_errors_that_say_why(self) -> None:
        cp = fake_bindings.sys.modules["wit_world.imports.checkpoint"]
        sk = fake_bindings.sys.modules["wit_world.imports.sink"]
        for error, expected in [
            (cp.CheckpointError_Conflict("gen 4 != 3"), "checkpoint conflict, another writer changed this source's state: gen 4 != 3"),
            (cp.CheckpointError_Storage("disk full"), "checkpoint storage failed: disk full"),
            (cp.CheckpointError_Invalid("holds a secret"), "checkpoint refused as invalid: holds a secret"),
        ]:
            self.host.commit_error = error
            with self.assertRaises(HostError) as caught:
                self.io.commit("{}")
            self.assertEqual(caught.exception.message, expected)
        self.host.emit_error = sk.SinkError_InvalidRecord((3, "not an object"))
        with self.assertRaises(HostError) as caught:
            self.io.emit(["{}"])
        self.assertEqual(caught.exception.message, "the host refused record 3 of the batch: not an object")
        self.host.emit_error = sk.SinkError_BufferFull("512 MiB")
        with self.assertRaises(HostError) as caught:
            self.io.emit(["{}"])
        self.assertIn("commit more often", caught.exception.message)


class HttpTransportTest(unittest.TestCase):
    def setUp(self) -> None:
        self.host = fake_bindings.install()
        self.io = HostIo()

    def test_a_get_goes_out_in_wasi_parts_and_the_whole_response_comes_back(self) -> None:
        body = b'{"events":[' + b",".join(b'{"id":%d}' % i for i in range(100)) + b"]}"
        self.host.http = lambda *r: (200, [("Content-Type", "application/json"), ("Retry-After", "3")], body)
        r = self.io.send(Request.get("https://tenant.example:8443/v1.0/events").query("event_type", '"sso"').bearer("t0k"))
        method, scheme, authority, path, headers, sent = self.host.requests[0]
        self.assertEqual((method, scheme, authority), ("GET", "https", "tenant.example:8443"))
        self.assertEqual(path, "/v1.0/events?event_type=%22sso%22")
        self.assertEqual(headers, [("authorization", "Bearer t0k")])
        self.assertEqual(sent, b"")
        self.assertEqual((r.status, r.body, r.header("content-type")), (200, body, "application/json"))
        self.assertEqual(r.retry_after(0), 3.0)

    def test_a_large_body_is_written_in_chunks_after_handle(self) -> None:
        self.host.http = lambda *r: (201, [], b"")
        payload = "x" * 10_000
        r = self.io.send(Request.post("http://127.0.0.1:9000/upload").form([("data", payload)]))
        self.assertEqual(r.status, 201)
        method, scheme, _, path, headers, sent = self.host.requests[0]
        self.assertEqual((method, scheme, path), ("POST", "http", "/upload"))
        self.assertEqual(sent, b"data=" + payload.encode())
        self.assertIn(("content-type", "application/x-www-form-urlencoded"), headers)

    def test_no_response_is_an_http_error_of_its_kind(self) -> None:
        w = fake_bindings.sys.modules["wit_world.imports.wasi_http_types"]
        with self.assertRaises(HttpError) as caught:
            self.io.send(Request.get("https://denied.example/x"))
        self.assertEqual(caught.exception.http_kind, HttpErrorKind.DENIED)
        self.assertEqual(caught.exception.message, "request to denied.example denied by the host's allow-list")
        self.assertIsInstance(caught.exception, TransportError)
        for code, kind, text in [
            (w.ErrorCode_ConnectionRefused(), HttpErrorKind.CONNECTION, "connection to a.example refused"),
            (w.ErrorCode_HttpResponseTimeout(), HttpErrorKind.TIMEOUT, "no response from a.example within the host's timeout"),
            (w.ErrorCode_HttpResponseBodySize(1024), HttpErrorKind.PROTOCOL, "response from a.example exceeds the host's body limit of 1024 bytes"),
            (w.ErrorCode_InternalError("boom"), HttpErrorKind.OTHER, "host error for a request to a.example: boom"),
        ]:
            self.host.http = lambda *r, c=code: c
            with self.assertRaises(HttpError) as caught:
                self.io.send(Request.get("https://a.example/"))
            self.assertEqual((caught.exception.http_kind, caught.exception.message), (kind, text))

    def test_a_body_cut_off_is_a_transport_error_and_every_resource_is_dropped_in_order(self) -> None:
        self.host.http = lambda *r: (200, [], fake_bindings.CUT)
        with self.assertRaises(HttpError) as caught:
            self.io.send(Request.get("https://a.example/events"))
        self.assertEqual(caught.exception.http_kind, HttpErrorKind.CONNECTION)
        self.assertEqual(caught.exception.message, "I/O error with a.example while reading the response body: connection reset by peer")

    def test_a_bad_header_is_named_without_its_value(self) -> None:
        with self.assertRaises(HttpError) as caught:
            self.io.send(Request.get("https://a.example/").header("x-token", "s3cret\nInjected: 1"))
        self.assertEqual(caught.exception.http_kind, HttpErrorKind.INVALID_REQUEST)
        self.assertIn("x-token", caught.exception.message)
        self.assertNotIn("s3cret", caught.exception.message)

    def test_a_bad_url_never_reaches_the_host(self) -> None:
        with self.assertRaises(HttpError) as caught:
            self.io.send(Request.get("ftp://a.example/"))
        self.assertEqual(caught.exception.http_kind, HttpErrorKind.INVALID_REQUEST)
        self.assertEqual(self.host.requests, [])


class ErrorsTest(unittest.TestCase):
    def test_errors_compare_by_kind_and_message(self) -> None:
        self.assertEqual(AuthError("x"), AuthError("x"))
        self.assertNotEqual(AuthError("x"), ConfigError("x"))
        self.assertEqual(str(AuthError("x")), "auth: x")
        self.assertEqual(AuthError("x").with_message("y"), AuthError("y"))
        self.assertTrue(all(issubclass(c, CollectError) for c in KINDS.values()))


if __name__ == "__main__":
    unittest.main()
