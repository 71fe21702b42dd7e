"""The events feed: `GET /v1.0/events` in ascending `indexed_at` order, each
page continuing strictly after the last delivered `(indexed_at, id)`.

The same requests, cursor and error meanings as the Rust collector
(`guests/ibm-verify/src/events.rs`): `indexed_at` (when Verify stored an
event), not `time`, so that an event indexed hours late still sorts after the
cursor; the `(value, id)` pair (`after_time` + `after_id`) so that equal
`indexed_at` values across a page boundary are neither skipped nor repeated.
`total_events` is capped by the API and tells nothing: a short page ends paging.
"""

from __future__ import annotations

import re

from siphon_sdk import AuthError, ConfigError, VendorError
from siphon_sdk.driver import Ctx, Page, Stream
from siphon_sdk.http import Request, Response
from siphon_sdk.jsontext import JsonError, Object, field_str, field_u64

from .settings import Config

#: The stream's name in the checkpoint and in messages.
STREAM = "events"

_U64_MAX = 2**64 - 1


def cursor_of(indexed_at: int | None, id_: str | None) -> dict | None:
    """The cursor after an event, or None when either part is missing."""
    if indexed_at is None or id_ is None:
        return None
    return {"indexed_at": indexed_at, "id": id_}


class Events(Stream):
    """The events feed of one tenant. Its cursor is `{"indexed_at": ms, "id": …}`
    (`id` absent before the first event: the start of the first-run window)."""

    name = STREAM

    def __init__(self, cfg: Config) -> None:
        if cfg.event_types is None:
            self.filter = ("all_events", "yes")
        else:
            # The API wants each name quoted.
            self.filter = ("event_type", ",".join(f'"{t}"' for t in cfg.event_types))
        self.url = f"{cfg.base_url}/v1.0/events"
        self.size = cfg.page_size

    def load_cursor(self, value: object) -> dict:
        if not isinstance(value, dict):
            raise ValueError(f"expected a cursor object, found {type(value).__name__}")
        at, id_ = value.get("indexed_at"), value.get("id")
        if at is None:
            raise ValueError("missing field `indexed_at`")
        if not isinstance(at, int) or isinstance(at, bool) or not 0 <= at <= _U64_MAX:
            raise ValueError("`indexed_at` is not a whole number")
        if id_ is not None and not isinstance(id_, str):
            raise ValueError("`id` is not a string")
        return {"indexed_at": at} if id_ is None else {"indexed_at": at, "id": id_}

    def request(self, cx: Ctx, cursor: dict) -> Request:
        # Always a lower bound: without `from` the API serves the last 24 h only.
        start = str(cursor["indexed_at"])
        r = (
            Request.get(self.url)
            .header("accept", "application/json")
            .query(*self.filter)
            .query("range_type", "indexed_at")
            .query("sort_order", "asc")
            .query("size", str(self.size))
            .query("from", start)
        )
        if cursor.get("id") is not None:
            r.query("after_time", start).query("after_id", cursor["id"])
        return r

    def parse(self, cx: Ctx, cursor: dict, response: Response) -> Page:
        if not response.body.strip():
            return Page([], dict(cursor))  # a 204 (or an empty 200): nothing new
        body = Object.parse(response.body)
        if not body.has("response"):
            raise VendorError(f"GET /v1.0/events answered without `response`: {response.vendor_message()}")
        # An empty result may leave the inner objects out.
        feed = body.object("response.events")
        records = [] if feed is None else feed.records_or_empty("events")
        page = [(_key(r), r) for r in records]
        if not page:
            following = dict(cursor)
        else:
            last = page[-1][1]
            following = cursor_of(field_u64(last, "indexed_at"), field_str(last, "id"))
            if following is None and feed is not None:
                # `search_after` (its `time` a string) describes the same event.
                try:
                    following = cursor_of(feed.u64("search_after.time"), feed.str("search_after.id"))
                except JsonError:
                    following = None
            if following is None:
                raise VendorError(
                    "the last event of a page has no `indexed_at` and `id`, nor the page a `search_after`: cannot continue after it"
                )
        return Page(records=page, next=following, more=len(page) >= self.size)

    def error(self, response: Response):  # noqa: ANN201
        message = response.vendor_message()
        if response.status == 400:
            return ConfigError(f"GET /v1.0/events refused {refused(message)}: {message}")
        if response.status == 403:
            return AuthError(
                'GET /v1.0/events: HTTP 403: the API client may not read events; give it the "Read reports" '
                f'(or "Manage reports") permission under Security > API access ({message})'
            )
        return response.status_error("GET /v1.0/events")


_PARAMS = [
    ("size", "setting `page_size`"),
    ("event_type", "setting `event_types`"),
    ("all_events", "setting `event_types`"),
    ("after_time", "the checkpoint; reset it to start over"),
    ("after_id", "the checkpoint; reset it to start over"),
    ("from", "the checkpoint, or setting `lookback_hours` on a first run"),
]


def refused(message: str) -> str:
    """The query parameter a 400's message names, and where its value came
    from. `from` is tried last: it is also an English word."""
    words = set(re.split(r"[^A-Za-z0-9_]", message))
    for param, origin in _PARAMS:
        if param in words:
            return f"parameter `{param}` (from {origin})"
    return "the request (check settings `event_types` and `page_size`)"


def _key(record: str) -> str:
    """The dedup key: the event's `id`, else its whole text."""
    id_ = field_str(record, "id")
    return record if id_ is None else id_
