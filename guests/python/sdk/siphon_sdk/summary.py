"""What a collector is and how a run went: the WIT `collector-info` and
`run-summary`, as plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import SettingSpec


@dataclass
class Info:
    """What `info` reports: name, version, vendor and every setting and secret."""

    name: str
    version: str
    vendor: str
    settings: list[SettingSpec] = field(default_factory=list)


@dataclass
class Summary:
    """Outcome of a successful run."""

    #: Vendor pages carrying records fetched in this run.
    pages: int = 0
    #: Records dropped as duplicates of records already emitted.
    duplicates: int = 0
    #: True when the vendor reported that no more data is available now.
    caught_up: bool = False
    #: Free text for the host's run summary log line.
    note: str | None = None
