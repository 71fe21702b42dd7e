"""The component side: thin wrappers over the bindings componentize-py
generates from `wit/` (`wit_world`), including the blocking HTTP transport.

Nothing outside this module and `component.py` imports `wit_world`, so the
rest of the SDK is plain Python and runs natively in tests. Resources are
closed (`with`) in the order `wasi:http` requires: a child (a stream, a
header map) before its parent is consumed or finished.
"""

from __future__ import annotations

from componentize_py_types import Err
from wit_world.imports import checkpoint, config, monotonic_clock, outgoing_handler, random, sink, wall_clock
from wit_world.imports import log as wit_log
from wit_world.imports import streams
from wit_world.imports import wasi_http_types as wasi

from .errors import HostError
from .http import Headers, HttpError, HttpErrorKind, Request, Response
from .log import Level

#: `blocking-write-and-flush` accepts at most 4096 bytes per call.
WRITE_CHUNK = 4096
#: Read size per `blocking-read`; the host may return less.
READ_CHUNK = 64 * 1024


def now_ms() -> int:
    t = wall_clock.now()
    return t.seconds * 1000 + t.nanoseconds // 1_000_000


def sleep(seconds: float) -> None:
    with monotonic_clock.subscribe_duration(max(0, int(seconds * 1e9))) as p:
        p.block()


def random_bytes(n: int) -> bytes:
    return random.get_random_bytes(n)


def source_name() -> str:
    return config.source_name()


def setting(name: str) -> str | None:
    return config.setting(name)


def secret(name: str) -> str | None:
    return config.secret(name)


def checkpoint_load() -> str | None:
    return checkpoint.load()


def checkpoint_commit(cursor: str) -> None:
    try:
        checkpoint.commit(cursor)
    except Err as e:
        v = e.value
        if isinstance(v, checkpoint.CheckpointError_Conflict):
            raise HostError(f"checkpoint conflict, another writer changed this source's state: {v.value}") from None
        if isinstance(v, checkpoint.CheckpointError_Storage):
            raise HostError(f"checkpoint storage failed: {v.value}") from None
        raise HostError(f"checkpoint refused as invalid: {v.value}") from None


def sink_emit(records: list[str]) -> None:
    try:
        sink.emit(records)
    except Err as e:
        v = e.value
        if isinstance(v, sink.SinkError_InvalidRecord):
            index, message = v.value
            raise HostError(f"the host refused record {index} of the batch: {message}") from None
        raise HostError(f"the host's record buffer is full ({v.value}); commit more often") from None


_LEVELS = {
    Level.TRACE: wit_log.Level.TRACE,
    Level.DEBUG: wit_log.Level.DEBUG,
    Level.INFO: wit_log.Level.INFO,
    Level.WARN: wit_log.Level.WARN,
    Level.ERROR: wit_log.Level.ERROR,
}


def log(level: Level, message: str) -> None:
    wit_log.log(_LEVELS[level], message)


def panicked(message: str) -> None:
    wit_log.panicked(message)


_METHODS = {
    "GET": wasi.Method_Get,
    "POST": wasi.Method_Post,
    "PUT": wasi.Method_Put,
    "DELETE": wasi.Method_Delete,
    "PATCH": wasi.Method_Patch,
    "HEAD": wasi.Method_Head,
}


def http_send(request: Request) -> Response:
    """Performs `request` and returns the complete response."""
    target = request.target()
    authority = target.authority

    def invalid(what: str) -> HttpError:
        return HttpError(HttpErrorKind.INVALID_REQUEST, f"request to {authority}: {what}")

    try:
        headers = wasi.Fields.from_list([(k, v.encode("utf-8")) for k, v in request.headers])
    except Err:
        # Name the headers, never their values: they may hold credentials.
        names = ", ".join(k for k, _ in request.headers)
        raise invalid(f"a header name or value is not valid HTTP (headers: {names})") from None
    outgoing = wasi.OutgoingRequest(headers)
    method = _METHODS.get(request.method)
    try:
        outgoing.set_method(method() if method else wasi.Method_Other(request.method))
        outgoing.set_scheme(wasi.Scheme_Https() if target.https else wasi.Scheme_Http())
        outgoing.set_authority(authority)
        outgoing.set_path_with_query(target.path_with_query)
    except Err:
        raise invalid("the host refused the method, scheme, authority or path") from None
    # The body handle is taken before the request is handed over, and written
    # after `handle`: the host drains it while sending.
    body = outgoing.body()
    try:
        future = outgoing_handler.handle(outgoing, None)
    except Err as e:
        body.__exit__(None, None, None)
        raise _error_code(e.value, authority) from None
    with future:
        _write_body(body, request.body or b"", authority)
        while True:
            got = future.get()
            if got is not None:
                break
            with future.subscribe() as pollable:
                pollable.block()
    if isinstance(got, Err):
        raise HttpError(HttpErrorKind.OTHER, f"request to {authority}: response taken twice")
    if isinstance(got.value, Err):
        raise _error_code(got.value.value, authority)
    incoming = got.value.value
    with incoming:
        status = incoming.status()
        with incoming.headers() as fields:
            header_list = Headers((k, v.decode("utf-8", errors="replace")) for k, v in fields.entries())
        data = _read_body(incoming.consume(), authority)
    return Response(status, header_list, data)


def _write_body(body: "wasi.OutgoingBody", data: bytes, authority: str) -> None:
    try:
        with body.write() as stream:
            for i in range(0, len(data), WRITE_CHUNK):
                try:
                    stream.blocking_write_and_flush(data[i : i + WRITE_CHUNK])
                except Err as e:
                    raise _stream_error(e.value, authority, "sending the body") from None
    except BaseException:
        # A traceback keeps this frame, and the body in it, alive: drop the
        # body now, or the host sees it outlive what it belongs to.
        body.__exit__(None, None, None)
        raise
    try:
        wasi.OutgoingBody.finish(body, None)
    except Err as e:
        raise _error_code(e.value, authority) from None


def _read_body(body: "wasi.IncomingBody", authority: str) -> bytes:
    chunks = []
    try:
        with body.stream() as stream:
            while True:
                try:
                    chunks.append(stream.blocking_read(READ_CHUNK))
                except Err as e:
                    if isinstance(e.value, streams.StreamError_Closed):
                        break
                    raise _stream_error(e.value, authority, "reading the response body") from None
    except BaseException:
        # A cut or reset body: the body is a child of the response, which the
        # caller drops next; a child still alive then is a trap, not an error.
        body.__exit__(None, None, None)
        raise
    # Trailers are not used.
    wasi.IncomingBody.finish(body).__exit__(None, None, None)
    return b"".join(chunks)


def _stream_error(e: object, authority: str, doing: str) -> HttpError:
    if isinstance(e, streams.StreamError_Closed):
        return HttpError(HttpErrorKind.CONNECTION, f"{authority} closed the connection while {doing}")
    err = e.value  # type: ignore[attr-defined]
    code = wasi.http_error_code(err)
    if code is not None:
        inner = _error_code(code, authority)
        return HttpError(inner.http_kind, f"{inner.message} (while {doing})")
    return HttpError(HttpErrorKind.CONNECTION, f"I/O error with {authority} while {doing}: {err.to_debug_string()}")


def _error_code(code: object, authority: str) -> HttpError:
    """A `wasi:http` `error-code` as an operator-grade message."""
    k = HttpErrorKind
    name = type(code).__name__.removeprefix("ErrorCode_")
    table = {
        "HttpRequestDenied": (k.DENIED, f"request to {authority} denied by the host's allow-list"),
        "DnsTimeout": (k.DNS, f"DNS lookup of {authority} timed out"),
        "DnsError": (k.DNS, f"DNS lookup of {authority} failed"),
        "DestinationNotFound": (k.DNS, f"{authority} not found"),
        "DestinationUnavailable": (k.CONNECTION, f"{authority} is unavailable"),
        "DestinationIpProhibited": (k.DENIED, f"the address of {authority} is prohibited by the host"),
        "DestinationIpUnroutable": (k.CONNECTION, f"the address of {authority} is unroutable"),
        "ConnectionRefused": (k.CONNECTION, f"connection to {authority} refused"),
        "ConnectionTerminated": (k.CONNECTION, f"connection to {authority} terminated"),
        "ConnectionTimeout": (k.TIMEOUT, f"connecting to {authority} timed out"),
        "ConnectionReadTimeout": (k.TIMEOUT, f"reading from {authority} timed out"),
        "ConnectionWriteTimeout": (k.TIMEOUT, f"writing to {authority} timed out"),
        "ConnectionLimitReached": (k.CONNECTION, f"connection limit reached for {authority}"),
        "TlsProtocolError": (k.TLS, f"TLS protocol error with {authority}"),
        "TlsCertificateError": (k.TLS, f"TLS certificate of {authority} rejected"),
        "TlsAlertReceived": (k.TLS, f"TLS alert from {authority}"),
        "HttpRequestBodySize": (k.INVALID_REQUEST, f"request body too large for {authority}"),
        "HttpRequestMethodInvalid": (k.INVALID_REQUEST, f"invalid method for {authority}"),
        "HttpRequestUriInvalid": (k.INVALID_REQUEST, f"invalid URI for {authority}"),
        "HttpRequestUriTooLong": (k.INVALID_REQUEST, f"URI too long for {authority}"),
        "HttpResponseIncomplete": (k.PROTOCOL, f"incomplete response from {authority}"),
        "HttpResponseBodySize": (k.PROTOCOL, f"response from {authority} exceeds the host's body limit"),
        "HttpResponseTimeout": (k.TIMEOUT, f"no response from {authority} within the host's timeout"),
        "HttpProtocolError": (k.PROTOCOL, f"HTTP protocol error with {authority}"),
    }
    if name in table:
        kind, message = table[name]
        limit = getattr(code, "value", None)
        if name == "HttpResponseBodySize" and isinstance(limit, int):
            message += f" of {limit} bytes"
        return HttpError(kind, message)
    if name == "InternalError":
        detail = getattr(code, "value", None)
        return HttpError(k.OTHER, f"host error for a request to {authority}" + (f": {detail}" if detail else ""))
    return HttpError(k.PROTOCOL, f"request to {authority} failed: {name}")

