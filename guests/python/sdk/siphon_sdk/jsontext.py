"""Vendor JSON read without re-serialising it: raw slices and field lookups.

A record is the vendor's text for one JSON object, kept byte for byte
(integers above 2^53, number spelling, key order, `\\uXXXX` escapes); the only
change is `compact`, which drops whitespace outside strings so that a
pretty-printed record fits on one NDJSON line. `Object` validates a body once
(`json.loads`) and then finds raw values by dotted path with a scanner built
on `re` (C speed), so nothing is parsed into Python values and back.
"""

from __future__ import annotations

import json
import math
import re

from .errors import VendorError

# A JSON string, unrolled so that `re` never backtracks or recurses.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_STRING_RE = re.compile(_STRING, re.S)
_DECODER = json.JSONDecoder()
_WS_RE = re.compile(r"[ \t\n\r]*")
_SPLIT_RE = re.compile("(" + _STRING + ")", re.S)
_NO_WS = str.maketrans("", "", " \t\n\r")


class JsonError(VendorError):
    """Vendor JSON that cannot be read as expected; the message names the field."""

    def __init__(self, message: str) -> None:
        super().__init__(f"unexpected JSON: {message}")


def compact(text: str) -> str:
    """`text` (valid JSON) without whitespace outside strings; nothing else changes."""
    if not any(c in text for c in " \t\n\r"):
        return text
    # Split into [outside, string, outside, string, …]: only the outside
    # pieces lose whitespace, strings are copied as they are.
    pieces = _SPLIT_RE.split(text)
    pieces[0::2] = [p.translate(_NO_WS) for p in pieces[0::2]]
    return "".join(pieces)


def _skip_ws(text: str, i: int) -> int:
    return _WS_RE.match(text, i).end()  # type: ignore[union-attr]


def _value_end(text: str, i: int) -> int:
    """End of the JSON value starting at `i` (no leading whitespace): the C
    scanner of `json` finds it, so no Python loop walks the value's tokens."""
    try:
        return _DECODER.raw_decode(text, i)[1]
    except ValueError as e:
        raise JsonError(f"not valid JSON: {e}") from None


def members(raw: str) -> list[tuple[str, str]]:
    """The fields of the object `raw` (valid JSON), keys decoded, values raw."""
    out: list[tuple[str, str]] = []
    i = _skip_ws(raw, 1)
    if raw[i] == "}":
        return out
    while True:
        key_end = _STRING_RE.match(raw, i).end()  # type: ignore[union-attr]
        key = raw[i + 1 : key_end - 1]
        if "\\" in key:
            key = json.loads(raw[i:key_end])
        i = _skip_ws(raw, _skip_ws(raw, key_end) + 1)  # past the colon
        end = _value_end(raw, i)
        out.append((key, raw[i:end]))
        i = _skip_ws(raw, end)
        if raw[i] == "}":
            return out
        i = _skip_ws(raw, i + 1)  # past the comma


def elements(raw: str, start: int = 0) -> list[str]:
    """The elements of the array at `start` of `raw` (valid JSON), raw."""
    out: list[str] = []
    i = _skip_ws(raw, start + 1)
    if raw[i] == "]":
        return out
    while True:
        end = _value_end(raw, i)
        out.append(raw[i:end])
        i = _skip_ws(raw, end)
        if raw[i] == "]":
            return out
        i = _skip_ws(raw, i + 1)


def kind(raw: str) -> str:
    """What a JSON value is, for messages."""
    c = raw[:1]
    return {"{": "an object", "[": "an array", '"': "a string", "t": "a boolean", "f": "a boolean", "n": "null", "": "nothing"}.get(
        c, "a number"
    )


def _locate(text: str, i: int, path: str) -> int | None:
    """Start of the value at dotted `path` inside the value starting at `i`,
    or None when a step is missing (or null). Only the siblings passed on the
    way are measured; the values entered are not, so a lookup reads the text
    about once. The first of duplicate keys wins, as in the Rust SDK."""
    if not path:
        return i
    for step in path.split("."):
        if text[i] != "{":
            if text.startswith("null", i):
                return None
            raise JsonError(f"field `{path}`: expected an object at `{step}`, found {kind(text[i:i + 1])}")
        j = _skip_ws(text, i + 1)
        found = None
        while text[j] != "}":
            key_end = _STRING_RE.match(text, j).end()  # type: ignore[union-attr]
            key = text[j + 1 : key_end - 1]
            if "\\" in key:
                key = json.loads(text[j:key_end])
            j = _skip_ws(text, _skip_ws(text, key_end) + 1)  # past the colon
            if key == step:
                found = j
                break
            j = _skip_ws(text, _value_end(text, j))
            if text[j] == ",":
                j = _skip_ws(text, j + 1)
        if found is None:
            return None
        i = found
    return i


def lookup(raw: str, path: str) -> str | None:
    """The raw value at dotted `path` inside `raw`; None when a step is
    missing. An empty path is `raw` itself. A step into a non-object is an error."""
    text = raw.strip()
    start = _locate(text, 0, path)
    return None if start is None else text[start : _value_end(text, start)]


def records_of(raw: str | None, what: str = "records", start: int = 0) -> list[str]:
    """Records in the value at `start` of `raw`: an array of objects, one object
    (a vendor's one-element array) or null (none), each compacted."""
    if raw is None:
        return []
    c = raw[start : start + 1]
    if c == "n":
        return []
    if c == "{":
        return [compact(raw[start : _value_end(raw, start)])]
    if c != "[":
        raise JsonError(f"{what}: expected an array of objects, found {kind(c)}")
    out = []
    for n, item in enumerate(elements(raw, start)):
        if not item.startswith("{"):
            raise JsonError(f"{what}: element {n} is {kind(item)}, not an object")
        out.append(compact(item))
    return out


def as_str(raw: str, path: str) -> str:
    """A string decoded, or a number's exact text."""
    c = raw[:1]
    if c == '"':
        return raw[1:-1] if "\\" not in raw else json.loads(raw)
    if c == "-" or c.isdigit():
        return raw
    raise JsonError(f"field `{path}`: expected a string or number, found {kind(raw)}")


def lenient_u64(text: str) -> int:
    """A whole number ≥ 0 written as `123`, `"123"` or `1.23e2`."""
    t = text.strip()
    if t.isdigit():
        return int(t)
    try:
        f = float(t)
    except ValueError:
        raise JsonError(f"{text!r} is not a number") from None
    if not math.isfinite(f) or f < 0 or f != int(f) or f >= 2**64:
        raise JsonError(f"{text!r} is not a whole number ≥ 0")
    return int(f)


def field_raw(record: str, path: str) -> str | None:
    """The raw value at `path` of JSON text `record`; None when missing or null."""
    found = lookup(record, path)
    return None if found is None or found == "null" else found


_MISSING = object()


def _parsed(record: str, path: str) -> object:
    """The value at `path` as `json` parses it (C speed), or `_MISSING`."""
    try:
        value = json.loads(record)
    except ValueError as e:
        raise JsonError(f"not valid JSON: {e}") from None
    for step in path.split(".") if path else ():
        if value is None:
            return _MISSING
        if not isinstance(value, dict):
            raise JsonError(f"field `{path}`: expected an object at `{step}`, found {_kind_of(value)}")
        if step not in value:
            return _MISSING
        value = value[step]
    return value


def _kind_of(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else "a number"


def field_str(record: str, path: str) -> str | None:
    """The text at `path`: a string decoded, a number as its exact text."""
    value = _parsed(record, path)
    if value is _MISSING or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):  # the vendor's spelling, not Python's
        raw = field_raw(record, path)
        return None if raw is None else as_str(raw, path)
    raise JsonError(f"field `{path}`: expected a string or number, found {_kind_of(value)}")


def field_u64(record: str, path: str) -> int | None:
    """A whole number ≥ 0 at `path`, sent as a number or a string."""
    value = _parsed(record, path)
    if value is _MISSING or value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64:
        return value
    if isinstance(value, (bool, dict, list)):
        raise JsonError(f"field `{path}`: expected a string or number, found {_kind_of(value)}")
    try:
        return lenient_u64(str(value))
    except JsonError as e:
        raise JsonError(f"field `{path}`: {e.message.removeprefix('unexpected JSON: ')}") from None


class Object:
    """One JSON object (a response body, or an object inside one), validated
    once, read by dotted paths without re-parsing what it does not need."""

    def __init__(self, text: str, start: int = 0) -> None:
        self.text, self.start = text, start

    @classmethod
    def parse(cls, body: bytes | str) -> "Object":
        """Validates `body`, which must be one JSON object."""
        try:
            text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
        except UnicodeDecodeError as e:
            raise JsonError(f"the body is not UTF-8: {e}") from None
        stripped = text.strip()
        if not stripped.startswith("{"):
            raise JsonError(f"expected a JSON object, found {kind(stripped)}")
        try:
            json.loads(stripped)
        except ValueError as e:
            raise JsonError(f"not valid JSON: {e}") from None
        return cls(stripped)

    def _at(self, path: str) -> int | None:
        start = _locate(self.text, self.start, path)
        return None if start is None or self.text.startswith("null", start) else start

    def keys(self) -> list[str]:
        """The top-level keys, in body order."""
        return [k for k, _ in members(self.text[self.start : _value_end(self.text, self.start)])]

    def has(self, path: str) -> bool:
        """True when `path` holds a value other than null."""
        return self._at(path) is not None

    def object(self, path: str) -> "Object | None":
        """The object at `path` (None when missing or null); anything else is an error."""
        start = self._at(path)
        if start is None:
            return None
        if self.text[start] != "{":
            raise JsonError(f"field `{path}`: expected a JSON object, found {kind(self.text[start:start + 1])}")
        return Object(self.text, start)

    def raw(self, path: str) -> str | None:
        """The raw value at `path`; None when missing or null."""
        start = self._at(path)
        return None if start is None else self.text[start : _value_end(self.text, start)]

    def records(self, path: str) -> list[str]:
        """The records at `path`; a missing field is an error naming the
        fields present (so a wrong path does not read as "no records")."""
        start = _locate(self.text, self.start, path)
        if start is None:
            present = ", ".join(self.keys())
            raise JsonError(f"field `{path}`: missing (the body has: {present[:120]})")
        return records_of(self.text, f"field `{path}`", start)

    def records_or_empty(self, path: str) -> list[str]:
        """Like `records`, but a missing field is no records too."""
        start = self._at(path)
        return [] if start is None else records_of(self.text, f"field `{path}`", start)

    def str(self, path: str) -> str | None:
        """`field_str` of the value at `path`."""
        raw = self.raw(path)
        return None if raw is None else as_str(raw, path)

    def u64(self, path: str) -> int | None:
        """`field_u64` of the value at `path`."""
        raw = self.raw(path)
        if raw is None:
            return None
        try:
            return lenient_u64(as_str(raw, path))
        except JsonError as e:
            raise JsonError(f"field `{path}`: {e.message.removeprefix('unexpected JSON: ')}") from None
