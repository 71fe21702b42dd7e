"""Settings and secrets, each declared once: the `SettingSpec` that `info`
reports and the parsed, validated value.

The host passes every setting as text (TOML strings unchanged, numbers and
booleans as their TOML text, arrays of strings as a JSON array). A parser
takes that text and returns the value or raises `ValueError` saying why it
is wrong; `Setting.read` turns that into a `ConfigError` naming the key, so
the same messages reach `siphon check` (through `validate`) and a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Generic, Optional, Sequence, TypeVar

from .errors import CollectError, ConfigError

T = TypeVar("T")
Lookup = Callable[[str], Optional[str]]


@dataclass(frozen=True)
class SettingSpec:
    """One setting or secret a collector understands (the WIT `setting-spec`)."""

    name: str
    description: str
    required: bool = False
    secret: bool = False
    default_value: str | None = None
    #: Required only when setting `[0]` has the text `[1]`.
    required_when: tuple[str, str] | None = None


def invalid(name: str, value: str, why: str) -> ConfigError:
    """The error for a setting whose text does not parse (the value is quoted:
    settings are not secrets)."""
    return ConfigError(f"setting `{name}` = {json.dumps(value, ensure_ascii=False)} is invalid: {why}")


def _condition(when: tuple[str, str] | None) -> str:
    return "" if when is None else f" with {when[0]} = {json.dumps(when[1])}"


class Setting(Generic[T]):
    """A setting: key, one line for operators, the default as configured text
    (None makes it required) and the parser that validates text and default alike."""

    def __init__(
        self,
        name: str,
        description: str,
        default: str | None,
        parse: Callable[[str], T],
        required_when: tuple[str, str] | None = None,
    ) -> None:
        self.name, self.description, self.default, self.parse, self.when = name, description, default, parse, required_when

    def spec(self) -> SettingSpec:
        """The declaration `info` reports."""
        required = self.default is None and self.when is None
        return SettingSpec(self.name, self.description, required, False, self.default, self.when)

    def read(self, lookup: Lookup) -> T:
        """The configured text (or the default) parsed; a `ConfigError` naming
        the key and the value when it is missing or wrong."""
        text = lookup(self.name)
        if text is None:
            if self.default is None:
                raise ConfigError(f"setting `{self.name}` is required{_condition(self.when)}")
            text = self.default
        try:
            return self.parse(text)
        except ValueError as e:
            raise invalid(self.name, text, str(e)) from None

    def get(self, io) -> T:  # noqa: ANN001 - any `Io`
        """The value from the run's `Io`."""
        return self.read(io.setting)

    def problem(self, io) -> str | None:  # noqa: ANN001
        """Why the source's value is unusable, or None."""
        try:
            self.get(io)
        except CollectError as e:
            return e.message
        return None


class Secret:
    """A secret: key and one line for operators (never the value)."""

    def __init__(self, name: str, description: str, required: bool = True, required_when: tuple[str, str] | None = None) -> None:
        self.name, self.description, self.when = name, description, required_when
        self.required = required and required_when is None

    def spec(self) -> SettingSpec:
        """The declaration `info` reports."""
        return SettingSpec(self.name, self.description, self.required, True, None, self.when)

    def read(self, lookup: Lookup) -> str:
        """The value, trimmed; missing or empty is a `ConfigError` naming the key."""
        value = lookup(self.name)
        if value is None:
            raise ConfigError(f"secret `{self.name}` is required{_condition(self.when)}")
        if not value.strip():
            raise ConfigError(f"secret `{self.name}` is empty")
        return value.strip()

    def get(self, io) -> str:  # noqa: ANN001
        """The value from the run's `Io`."""
        return self.read(io.secret)

    def problem(self, io) -> str | None:  # noqa: ANN001
        """Presence only: a missing required secret or an empty one."""
        value = io.secret(self.name)
        if value is None and not self.required:
            return None
        try:
            self.read(lambda _: value)
        except CollectError as e:
            return e.message
        return None


def problems(declared: Sequence[Setting | Secret], io) -> list[str]:  # noqa: ANN001
    """Every problem with the source's configuration, one line each naming its
    key: the body of `Collector.validate`."""
    return [p for p in (d.problem(io) for d in declared) if p is not None]


class parse:  # noqa: N801 - a namespace, as `config::parse` in the Rust SDK
    """Parsers for `Setting`: each returns the value or raises `ValueError`."""

    @staticmethod
    def u64(text: str) -> int:
        """A whole number ≥ 0; `_` separators accepted as in TOML."""
        digits = text.strip().replace("_", "")
        if not digits or not all("0" <= c <= "9" for c in digits):
            raise ValueError("expected a non-negative whole number")
        n = int(digits)
        if n >= 2**64:
            raise ValueError("the number is too large")
        return n

    @staticmethod
    def u64_in(text: str, lo: int, hi: int) -> int:
        """A whole number in `lo..=hi`."""
        n = parse.u64(text)
        if not lo <= n <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return n

    @staticmethod
    def bool(text: str) -> bool:
        """`true`/`false` (also yes/no, on/off, 1/0), any case."""
        t = text.strip().lower()
        if t in ("true", "yes", "on", "1"):
            return True
        if t in ("false", "no", "off", "0"):
            return False
        raise ValueError("expected true or false")

    @staticmethod
    def text(text: str) -> str:
        """Text as given, trimmed; empty is refused."""
        if not text.strip():
            raise ValueError("must not be empty")
        return text.strip()

    @staticmethod
    def list(text: str) -> list[str]:
        """A JSON array of strings (how the host passes TOML arrays) or
        comma-separated text; items trimmed, empty ones dropped."""
        t = text.strip()
        if t.startswith("["):
            try:
                items = json.loads(t)
            except ValueError as e:
                raise ValueError(f"expected a JSON array of strings: {e}") from None
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ValueError("expected a JSON array of strings")
        else:
            items = t.split(",")
        return [i.strip() for i in items if i.strip()]

    @staticmethod
    def names(text: str) -> list[str]:
        """A non-empty list of names without duplicates (order kept), each of
        letters, digits, `_`, `-`, `.` and spaces."""
        out: list[str] = []
        for item in parse.list(text):
            if not all(c.isascii() and (c.isalnum() or c in "_-. ") for c in item):
                raise ValueError(f"`{item}` is not a valid name")
            if item not in out:
                out.append(item)
        if not out:
            raise ValueError("names nothing")
        return out

    @staticmethod
    def base_url(text: str) -> str:
        """`https://host[:port][/path]` (or `http://`), no query, fragment or
        credentials; the trailing `/` dropped."""
        url = text.strip().rstrip("/")
        lower = url.lower()
        if lower.startswith("https://"):
            rest = lower[8:]
        elif lower.startswith("http://"):
            rest = lower[7:]
        else:
            raise ValueError("must start with https://")
        host = rest.split("/", 1)[0]
        if not host:
            raise ValueError("has no host name")
        if "?" in rest or "#" in rest:
            raise ValueError("must not contain a query or fragment")
        if "@" in host:
            raise ValueError("must not contain credentials")
        return url
