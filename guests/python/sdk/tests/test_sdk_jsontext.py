"""Byte-exact records and field lookups, checked against `json` itself."""

import json
import random
import unittest

from siphon_sdk.jsontext import JsonError, Object, compact, elements, field_str, field_u64, lenient_u64, members, records_of


def compact_reference(text: str) -> str:
    """The plain character-at-a-time definition `compact` must match."""
    out, in_string, escaped = [], False, False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in " \t\n\r":
            continue
        out.append(c)
    return "".join(out)


def random_value(rng: random.Random, depth: int = 0) -> object:
    pick = rng.randrange(8 if depth < 3 else 5)
    if pick == 0:
        return rng.choice([None, True, False])
    if pick == 1:
        return rng.choice([0, -1, 2**70, 18446744073709551616, 1.5e300, 3.25])
    if pick in (2, 3, 4):
        return "".join(rng.choice(['"', "\\", " ", "{", "]", ",", ":", "é", "\u2603", "\n", "a", "\t"]) for _ in range(rng.randrange(6)))
    if pick in (5, 6):
        return {"k" + str(i) + rng.choice(["", " ", '"', "\\"]): random_value(rng, depth + 1) for i in range(rng.randrange(4))}
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def spaced(value: object, rng: random.Random) -> str:
    """`value` as JSON with random whitespace between tokens and random escaping."""
    ws = lambda: rng.choice(["", " ", "\n  ", "\t", "\r\n"])  # noqa: E731
    if isinstance(value, dict):
        return "{" + ws() + ",".join(f"{ws()}{json.dumps(k, ensure_ascii=rng.random() < 0.5)}{ws()}:{ws()}{spaced(v, rng)}{ws()}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ws() + ",".join(ws() + spaced(v, rng) + ws() for v in value) + "]"
    return json.dumps(value, ensure_ascii=rng.random() < 0.5)


class JsonTextTest(unittest.TestCase):
    def test_records_keep_the_vendors_bytes(self) -> None:
        body = '{"result": [ {"_id": 18446744073709551616, "u": "\\u00e9é", "f": 1.50e+3, "s":"a  b\\" ]}"} , {"n":[ 1, {"x" : null} ]} ]}'
        self.assertEqual(
            Object.parse(body.encode()).records("result"),
            ['{"_id":18446744073709551616,"u":"\\u00e9é","f":1.50e+3,"s":"a  b\\" ]}"}', '{"n":[1,{"x":null}]}'],
        )

    def test_compact_matches_the_reference_on_random_text(self) -> None:
        rng = random.Random(7)
        for _ in range(3000):
            text = spaced(random_value(rng), rng)
            self.assertEqual(compact(text), compact_reference(text), text)

    def test_members_and_elements_split_what_json_parses(self) -> None:
        rng = random.Random(11)
        for _ in range(3000):
            value = random_value(rng)
            text = spaced(value, rng)
            if isinstance(value, dict):
                got = members(text)
                self.assertEqual([k for k, _ in got], list(value), text)
                self.assertEqual([json.loads(v) for _, v in got], list(value.values()), text)
            elif isinstance(value, list):
                self.assertEqual([json.loads(e) for e in elements(text)], value, text)

    def test_one_object_or_null_or_a_missing_array(self) -> None:
        o = Object.parse('{"a": {"id": 1}, "b": null, "c": [], "d": 3}')
        self.assertEqual(o.records("a"), ['{"id":1}'])
        self.assertEqual((o.records("b"), o.records("c"), o.records_or_empty("zz")), ([], [], []))
        with self.assertRaises(JsonError) as caught:
            o.records("zz")
        self.assertIn("missing (the body has: a, b, c, d)", caught.exception.message)
        with self.assertRaises(JsonError):
            o.records("d")
        with self.assertRaises(JsonError) as caught:
            records_of("[{}, 1]", "field `x`")
        self.assertIn("element 1 is a number", caught.exception.message)

    def test_paths_descend_without_reading_what_they_skip(self) -> None:
        o = Object.parse('{"a": [1, {"b": 2}], "r": {"e": {"x": "}", "events": [{"id": 1}]}, "n": null}, "r": 5}')
        self.assertTrue(o.has("r.e") and not o.has("r.n") and not o.has("r.zz") and not o.has("zz.y"))
        feed = o.object("r.e")
        self.assertEqual((feed.records("events"), feed.str("x"), feed.keys()), (['{"id":1}'], "}", ["x", "events"]))
        self.assertIsNone(o.object("r.n"))
        self.assertEqual(o.raw("r"), '{"e": {"x": "}", "events": [{"id": 1}]}, "n": null}')  # the first of two `r`s
        with self.assertRaises(JsonError):
            o.object("a")
        with self.assertRaises(JsonError):
            o.has("a.b")

    def test_bodies_that_are_not_one_object_are_refused(self) -> None:
        for body in [b"[1]", b'{"a":1', b"\xff", b"", b'{"a":1} {}']:
            with self.assertRaises(JsonError, msg=body):
                Object.parse(body)

    def test_field_lookups(self) -> None:
        r = '{"id":"a\\u00e9","n":12345678901234567890,"s":"42","t":"1.23e2","o":{"p":{"q":"deep"}},"z":null,"b":true}'
        self.assertEqual((field_str(r, "id"), field_str(r, "n"), field_str(r, "o.p.q"), field_str(r, "z"), field_str(r, "nope")), ("aé", "12345678901234567890", "deep", None, None))
        self.assertEqual((field_u64(r, "n"), field_u64(r, "s"), field_u64(r, "t")), (12345678901234567890, 42, 123))
        for bad in ("b", "o", "id"):
            with self.assertRaises(JsonError, msg=bad):
                field_u64(r, bad)
        with self.assertRaises(JsonError):
            field_str(r, "b")
        self.assertEqual(Object.parse(r).str("o.p.q"), "deep")
        self.assertEqual(lenient_u64(" 7 "), 7)


if __name__ == "__main__":
    unittest.main()
