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
# Tokens that change nesting depth, with strings skipped whole.
_NESTING_RE = re.compile(_STRING + r"|[\[\]{}]", re.S)
# A scalar other than a string ends at a delimiter.
_SCALAR_RE = re.compile(r"[^\s,\]}:]+")
_WS_RE = re.compile(r"[ \t\n\r]*")
_COMPACT_RE = re.compile("(" + _STRING + r")|[ \t\n\r]+", re.S)


class JsonError(VendorError):
    """Vendor JSON that cannot be read as expected; the message names the field."""

    def __init__(self, message: str) -> None:
        super().__init__(f"unexpected JSON: {message}")


def compact(text: str) -> str:
    """`text` (valid JSON) without whitespace outside strings; nothing else changes."""
    if not any(c in text for c in " \t\n\r"):
        return text
    return _COMPACT_RE.sub(lambda m: m.group(1) or "", text)


def _skip_ws(text: str, i: int) -> int:
    return _WS_RE.match(text, i).end()  # type: ignore[union-attr]


def _value_end(text: str, i: int) -> int:
    """End of the valid JSON value starting at `i` (no leading whitespace)."""
    c = text[i]
    if c == '"':
        return _STRING_RE.match(text, i).end()  # type: ignore[union-attr]
    if c in "[{":
        depth = 0
        for m in _NESTING_RE.finditer(text, i):
            t = m.group()
            if t in "[{":
                depth += 1
            elif t in "]}":
                depth -= 1
                if depth == 0:
                    return m.end()
        raise JsonError("unterminated value")
    m = _SCALAR_RE.match(text, i)
    if m is None:
        raise JsonError(f"no value at offset {i}")
    return m.end()


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


def elements(raw: str) -> list[str]:
    """The elements of the array `raw` (valid JSON), raw."""
    out: list[str] = []
    i = _skip_ws(raw, 1)
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


def lookup(raw: str, path: str) -> str | None:
    """The raw value at dotted `path` inside `raw`; None when a step is
    missing. An empty path is `raw` itself. A step into a non-object is an error."""
    value = raw.strip()
    if not path:
        return value
    for step in path.split("."):
        if not value.startswith("{"):
            if value == "null":
                return None
            raise JsonError(f"field `{path}`: expected an object at `{step}`, found {kind(value)}")
        found = next((v for k, v in members(value) if k == step), None)
        if found is None:
            return None
        value = found
    return value


def records_of(raw: str | None, what: str = "records") -> list[str]:
    """Records in `raw`: an array of objects, one object (a vendor's
    one-element array) or null (none), each compacted."""
    if raw is None or raw == "null":
        return []
    if raw.startswith("{"):
        return [compact(raw)]
    if not raw.startswith("["):
        raise JsonError(f"{what}: expected an array of objects, found {kind(raw)}")
    out = []
    for n, item in enumerate(elements(raw)):
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


def field_str(record: str, path: str) -> str | None:
    """`as_str` of the value at `path`."""
    raw = field_raw(record, path)
    return None if raw is None else as_str(raw, path)


def field_u64(record: str, path: str) -> int | None:
    """A whole number ≥ 0 at `path`, sent as a number or a string."""
    raw = field_raw(record, path)
    if raw is None:
        return None
    try:
        return lenient_u64(as_str(raw, path))
    except JsonError as e:
        raise JsonError(f"field `{path}`: {e.message.removeprefix('unexpected JSON: ')}") from None


class Object:
    """One JSON object (a response body), validated, read by dotted paths."""

    def __init__(self, text: str) -> None:
        self.text = text

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

    def keys(self) -> list[str]:
        """The top-level keys, in body order."""
        return [k for k, _ in members(self.text)]

    def raw(self, path: str) -> str | None:
        """The raw value at `path`; None when missing or null."""
        return field_raw(self.text, path)

    def records(self, path: str) -> list[str]:
        """The records at `path`; a missing field is an error naming the
        fields present (so a wrong path does not read as "no records")."""
        found = lookup(self.text, path)
        if found is None:
            present = ", ".join(self.keys())
            raise JsonError(f"field `{path}`: missing (the body has: {present[:120]})")
        return records_of(found, f"field `{path}`")

    def records_or_empty(self, path: str) -> list[str]:
        """Like `records`, but a missing field is no records too."""
        return records_of(self.raw(path), f"field `{path}`")

    def str(self, path: str) -> str | None:
        """`field_str` of this object."""
        return field_str(self.text, path)

    def u64(self, path: str) -> int | None:
        """`field_u64` of this object."""
        return field_u64(self.text, path)
