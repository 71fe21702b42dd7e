"""The README's example collector (`example_app.py`) against a simulated Acme
API: paging with a page token, the boundary on the next run, crashes."""

import json
import unittest
from unittest import mock

import fake_bindings

fake_bindings.install()  # the example exports `WitWorld` at import

import example_app  # noqa: E402
from siphon_sdk.http import Request, Response  # noqa: E402
from siphon_sdk.testing import FakeIo, crash_everywhere, run  # noqa: E402


class Acme:
    def __init__(self, n: int) -> None:
        self.items = [{"id": f"a{i}", "time": 1_718_000_000_000 - 1000 * (n - i), "n": 18446744073709551616} for i in range(n)]

    def __call__(self, r: Request) -> Response:
        if r.path() == "/oauth/token":
            return Response(200, body=b'{"access_token":"t","expires_in":3600}')
        since, token = int(r.query_value("since")), int(r.query_value("page_token") or 0)
        matching = [i for i in self.items if i["time"] >= since]
        page = matching[token : token + 4]
        following = token + 4 if token + 4 < len(matching) else None
        body = {"items": page, "next_page_token": None if following is None else str(following)}
        return Response(200, body=json.dumps(body, separators=(",", ":")).encode())


def fake(n: int) -> FakeIo:
    io = FakeIo(Acme(n)).with_settings(base_url="https://acme.example").with_secrets(client_id="i", client_secret="s")
    return io


def collect(io: FakeIo) -> object:
    with mock.patch.object(example_app, "HostIo", lambda: io):
        return example_app.AcmeAudit.collect()


class ExampleTest(unittest.TestCase):
    def test_pages_to_the_end_then_the_next_run_starts_after_the_newest_item(self) -> None:
        io = fake(10)
        s = run(io, collect)
        self.assertEqual(s.note, "audit: 3 pages, 10 records, caught up")
        self.assertEqual([json.loads(r)["id"] for r in io.delivered], [f"a{i}" for i in range(10)])
        self.assertIn('"n":18446744073709551616', io.delivered[0])
        io.handler.items.append({"id": "new", "time": 1_718_000_000_500})
        run(io, collect)
        self.assertEqual(json.loads(io.delivered[-1])["id"], "new")
        self.assertEqual(len(io.delivered), 11)

    def test_a_crash_anywhere_delivers_every_item_once(self) -> None:
        self.assertGreater(crash_everywhere(lambda: fake(9), collect, lambda io: [json.dumps(i, separators=(",", ":")) for i in io.handler.items]), 8)

    def test_info_and_validate(self) -> None:
        self.assertEqual([s.name for s in example_app.AcmeAudit.info().settings], ["base_url", "lookback_hours", "client_id", "client_secret"])
        io = FakeIo(Acme(0)).with_settings(lookback_hours="x")
        with mock.patch.object(example_app, "HostIo", lambda: io):
            self.assertEqual(
                example_app.AcmeAudit.validate(),
                [
                    "setting `base_url` is required",
                    'setting `lookback_hours` = "x" is invalid: expected a non-negative whole number',
                    "secret `client_id` is required",
                    "secret `client_secret` is required",
                ],
            )


if __name__ == "__main__":
    unittest.main()
