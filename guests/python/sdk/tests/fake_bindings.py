"""A native fake of the bindings componentize-py generates from `wit/`
(`wit_world` and `componentize_py_types`): the same module, class and function
names, backed by an in-memory host. `install()` puts them in `sys.modules`,
so `siphon_sdk._wasi` and `siphon_sdk.component` run unchanged in CPython.

The wasi:http part checks the resource rules a real host enforces: a child
(stream, header map) must be closed before its parent is consumed, finished
or dropped, and the outgoing body is finished after `handle`.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


@dataclass
class Ok(Generic[T]):
    value: T


@dataclass(frozen=True)
class Err(Exception):
    value: Any


@dataclass
class Some(Generic[T]):
    value: T


class Resource:
    """A resource handle: `with` closes it; using it closed is an error."""

    closed = False

    def __enter__(self):  # noqa: ANN204
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.closed = True

    def live(self) -> None:
        assert not self.closed, f"{type(self).__name__} used after drop"


class Host:
    """What the fake host holds and records."""

    def __init__(self) -> None:
        self.settings: dict[str, str] = {}
        self.secrets: dict[str, str] = {}
        self.cursor: str | None = None
        self.commits: list[str] = []
        self.emitted: list[list[str]] = []
        self.logs: list[tuple[str, str]] = []
        self.panics: list[str] = []
        self.commit_error: Any = None
        self.emit_error: Any = None
        self.now_ns = 1_718_000_000_123_456_789
        self.slept_ns: list[int] = []
        #: `(method, scheme, authority, path, headers, body)` → `(status, headers, body)`, or an `ErrorCode_*` to fail.
        self.http: Callable[..., Any] = lambda *a: (200, [], b"{}")
        self.requests: list[tuple] = []


HOST = Host()
#: A response body that breaks off after its headers (a cut or reset connection).
CUT = b"<cut>"


def _module(name: str, **attrs: Any) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def _variant(module: types.ModuleType, prefix: str, cases: dict[str, bool]) -> None:
    for case, has_value in cases.items():
        fields = {"__annotations__": {"value": Any}} if has_value else {}
        setattr(module, f"{prefix}_{case}", dataclass(type(f"{prefix}_{case}", (), fields)))


def install() -> Host:
    """Installs the fake modules (once) and returns a fresh host."""
    global HOST
    HOST = Host()
    if "wit_world" in sys.modules and getattr(sys.modules["wit_world"], "FAKE", False):
        return HOST
    _module("componentize_py_types", Ok=Ok, Err=Err, Some=Some)
    _module("wit_world", FAKE=True)
    imports = _module("wit_world.imports")

    # siphon:collector/types
    t = _module("wit_world.imports.siphon_collector_types")
    t.SettingCondition = dataclass(type("SettingCondition", (), {"__annotations__": {"setting": str, "value": str}}))
    t.SettingSpec = dataclass(
        type(
            "SettingSpec",
            (),
            {"__annotations__": {"name": str, "description": str, "required": bool, "secret": bool, "default_value": Any, "required_when": Any}},
        )
    )
    t.CollectorInfo = dataclass(type("CollectorInfo", (), {"__annotations__": {"name": str, "version": str, "vendor": str, "settings": list}}))
    t.RunSummary = dataclass(type("RunSummary", (), {"__annotations__": {"pages": int, "duplicates": int, "caught_up": bool, "note": Any}}))
    _variant(t, "CollectError", {c: True for c in ("Config", "Auth", "NotFound", "RateLimited", "Vendor", "Transport", "Host")})

    # siphon:collector/config, checkpoint, sink, log
    _module(
        "wit_world.imports.config",
        source_name=lambda: "fake-source",
        setting=lambda n: HOST.settings.get(n),
        secret=lambda n: HOST.secrets.get(n),
    )
    cp = _module("wit_world.imports.checkpoint")
    _variant(cp, "CheckpointError", {"Conflict": True, "Storage": True, "Invalid": True})

    def commit(cursor: str) -> list[str]:
        if HOST.commit_error is not None:
            raise Err(HOST.commit_error)
        HOST.cursor = cursor
        HOST.commits.append(cursor)
        return []

    cp.load, cp.commit = (lambda: HOST.cursor), commit
    sk = _module("wit_world.imports.sink")
    _variant(sk, "SinkError", {"InvalidRecord": True, "BufferFull": True})

    def emit(records: list[str]) -> None:
        if HOST.emit_error is not None:
            raise Err(HOST.emit_error)
        HOST.emitted.append(list(records))

    sk.emit = emit
    lg = _module("wit_world.imports.log")
    lg.Level = Enum("Level", {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "ERROR": 4})
    lg.log = lambda level, message: HOST.logs.append((level.name, message))
    lg.panicked = lambda message: HOST.panics.append(message)

    # wasi:clocks, wasi:random
    class Pollable(Resource):
        def __init__(self, ns: int) -> None:
            self.ns = ns

        def block(self) -> None:
            self.live()
            HOST.slept_ns.append(self.ns)
            HOST.now_ns += self.ns

    _module("wit_world.imports.poll", Pollable=Pollable)
    _module("wit_world.imports.monotonic_clock", subscribe_duration=lambda ns: Pollable(ns), now=lambda: HOST.now_ns)
    Datetime = dataclass(type("Datetime", (), {"__annotations__": {"seconds": int, "nanoseconds": int}}))
    _module("wit_world.imports.wall_clock", Datetime=Datetime, now=lambda: Datetime(HOST.now_ns // 10**9, HOST.now_ns % 10**9))
    _module("wit_world.imports.random", get_random_bytes=lambda n: bytes(range(n)))

    _install_http()
    for name in ("siphon_collector_types", "config", "checkpoint", "sink", "log", "poll", "monotonic_clock", "wall_clock", "random"):
        setattr(imports, name, sys.modules[f"wit_world.imports.{name}"])
    for name in ("streams", "wasi_http_types", "outgoing_handler"):
        setattr(imports, name, sys.modules[f"wit_world.imports.{name}"])
    return HOST


def _install_http() -> None:
    st = _module("wit_world.imports.streams")
    _variant(st, "StreamError", {"LastOperationFailed": True, "Closed": False})
    w = _module("wit_world.imports.wasi_http_types")
    _variant(w, "Method", {m: False for m in ("Get", "Head", "Post", "Put", "Delete", "Connect", "Options", "Trace", "Patch")})
    _variant(w, "Method", {"Other": True})
    _variant(w, "Scheme", {"Http": False, "Https": False, "Other": True})
    codes_with_value = {"DnsError", "TlsAlertReceived", "HttpRequestBodySize", "HttpResponseBodySize", "InternalError"}
    codes = (
        "DnsTimeout DnsError DestinationNotFound DestinationUnavailable DestinationIpProhibited DestinationIpUnroutable "
        "ConnectionRefused ConnectionTerminated ConnectionTimeout ConnectionReadTimeout ConnectionWriteTimeout "
        "ConnectionLimitReached TlsProtocolError TlsCertificateError TlsAlertReceived HttpRequestDenied "
        "HttpRequestBodySize HttpRequestMethodInvalid HttpRequestUriInvalid HttpRequestUriTooLong HttpResponseIncomplete "
        "HttpResponseBodySize HttpResponseTimeout HttpProtocolError InternalError"
    ).split()
    _variant(w, "ErrorCode", {c: c in codes_with_value for c in codes})
    _variant(w, "HeaderError", {"InvalidSyntax": False, "Forbidden": False, "Immutable": False})

    class Fields(Resource):
        def __init__(self, entries: list[tuple[str, bytes]]) -> None:
            self._entries = entries

        @classmethod
        def from_list(cls, entries: list[tuple[str, bytes]]) -> "Fields":
            for k, v in entries:
                if not k or any(c in k for c in " :\r\n") or b"\n" in v:
                    raise Err(w.HeaderError_InvalidSyntax())
            return cls(list(entries))

        def entries(self) -> list[tuple[str, bytes]]:
            self.live()
            return list(self._entries)

    class OutputStream(Resource):
        def __init__(self, body: "OutgoingBody") -> None:
            self.body = body

        def blocking_write_and_flush(self, data: bytes) -> None:
            self.live()
            assert len(data) <= 4096, "blocking-write-and-flush takes at most 4096 bytes"
            assert self.body.request.handled, "body written before `handle`"
            self.body.data += data

    class OutgoingBody(Resource):
        def __init__(self, request: "OutgoingRequest") -> None:
            self.request, self.data, self.stream, self.finished = request, b"", None, False

        def write(self) -> OutputStream:
            self.stream = OutputStream(self)
            return self.stream

        @classmethod
        def finish(cls, this: "OutgoingBody", trailers: Any) -> None:
            assert this.stream is None or this.stream.closed, "body finished with its stream open"
            this.finished = True
            this.request.respond()

    class OutgoingRequest(Resource):
        def __init__(self, headers: Fields) -> None:
            self.headers, self.method, self.scheme, self.authority, self.path = headers, None, None, None, None
            self._body, self.handled, self.future = None, False, None

        def set_method(self, m: Any) -> None:
            self.method = m

        def set_scheme(self, s: Any) -> None:
            self.scheme = s

        def set_authority(self, a: str) -> None:
            self.authority = a

        def set_path_with_query(self, p: str) -> None:
            self.path = p

        def body(self) -> OutgoingBody:
            assert self._body is None, "body taken twice"
            self._body = OutgoingBody(self)
            return self._body

        def respond(self) -> None:
            method = type(self.method).__name__.removeprefix("Method_").upper()
            scheme = "https" if type(self.scheme).__name__ == "Scheme_Https" else "http"
            headers = [(k, v.decode()) for k, v in self.headers._entries]
            request = (method, scheme, self.authority, self.path, headers, self._body.data)
            HOST.requests.append(request)
            self.future.result = HOST.http(*request)

    class IncomingBody(Resource):
        def __init__(self, data: bytes) -> None:
            self.data, self._stream = data, None

        def stream(self) -> "InputStream":
            self._stream = InputStream(self.data)
            return self._stream

        @classmethod
        def finish(cls, this: "IncomingBody") -> Resource:
            assert this._stream is None or this._stream.closed, "body finished with its stream open"
            this.closed = True
            return Resource()

    class InputStream(Resource):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def blocking_read(self, n: int) -> bytes:
            self.live()
            if self.data == CUT:
                raise Err(st.StreamError_LastOperationFailed(IoError()))
            if not self.data:
                raise Err(st.StreamError_Closed())
            chunk, self.data = self.data[: min(n, 7)], self.data[min(n, 7) :]  # short reads, as hosts do
            return chunk

    class IoError(Resource):
        def to_debug_string(self) -> str:
            return "connection reset by peer"

    class IncomingResponse(Resource):
        def __init__(self, status: int, headers: list, body: bytes) -> None:
            self._status, self._headers, self._body = status, headers, body
            self._fields, self._consumed = None, None

        def __exit__(self, *exc) -> None:  # noqa: ANN002
            assert self._consumed is None or self._consumed.closed, "response dropped while its body is alive"
            self.closed = True

        def status(self) -> int:
            return self._status

        def headers(self) -> Fields:
            self._fields = Fields([(k, v.encode()) for k, v in self._headers])
            return self._fields

        def consume(self) -> IncomingBody:
            assert self._fields is None or self._fields.closed, "response consumed with its headers open"
            self._consumed = IncomingBody(self._body)
            return self._consumed

    class FutureIncomingResponse(Resource):
        def __init__(self) -> None:
            self.result, self.polls = None, 0

        def get(self) -> Any:
            self.live()
            if self.result is None:
                return None
            r, self.result = self.result, "taken"
            if r == "taken":
                return Err(None)
            if isinstance(r, tuple):
                return Ok(Ok(IncomingResponse(*r)))
            return Ok(Err(r))

        def subscribe(self) -> Any:
            self.polls += 1
            return sys.modules["wit_world.imports.poll"].Pollable(0)

    def handle(request: OutgoingRequest, options: Any) -> FutureIncomingResponse:
        request.handled = True
        request.future = FutureIncomingResponse()
        if request.authority == "denied.example":
            raise Err(w.ErrorCode_HttpRequestDenied())
        return request.future

    w.Fields, w.OutgoingBody, w.OutgoingRequest, w.IncomingBody = Fields, OutgoingBody, OutgoingRequest, IncomingBody
    w.IncomingResponse, w.FutureIncomingResponse = IncomingResponse, FutureIncomingResponse
    w.http_error_code = lambda err: None
    _module("wit_world.imports.outgoing_handler", handle=handle)
