"""The driver's checkpoint JSON, shared with the Rust SDK byte for byte."""

import unittest

from siphon_sdk import ConfigError
from siphon_sdk.checkpoint import Checkpoint, StreamState

# Written by the Rust driver (serde_json): struct fields in declaration order,
# cursor objects (a `Value`) with sorted keys, empty fields left out.
RUST = (
    '{"version":2,"scope":"idx-1","streams":{"alerts":{"cursor":{"a":[{"y":1,"z":2}],"b":"é"},"inflight":true,'
    '"last_page":{"count":3,"first_id":"x","last_id":"z","ids_hash":"00ff00ff00ff00ff"},"not_before_ms":1700000000000},'
    '"events":{"cursor":{"id":"f70f7055","indexed_at":1796219077623}}}}'
)


class CheckpointTest(unittest.TestCase):
    def test_a_rust_checkpoint_reads_and_writes_back_byte_for_byte(self) -> None:
        cp = Checkpoint.parse(RUST, 2)
        self.assertEqual(cp.scope, "idx-1")
        self.assertEqual(cp.streams["events"].cursor, {"id": "f70f7055", "indexed_at": 1796219077623})
        self.assertTrue(cp.streams["alerts"].inflight)
        self.assertEqual(cp.to_json(), RUST)

    def test_cursor_keys_are_sorted_and_empty_fields_left_out(self) -> None:
        cp = Checkpoint(1)
        cp.streams["events"] = StreamState({"indexed_at": 5, "id": "b"})
        cp.streams["a"] = StreamState(None, False, None, 9)
        self.assertEqual(cp.to_json(), '{"version":1,"streams":{"a":{"not_before_ms":9},"events":{"cursor":{"id":"b","indexed_at":5}}}}')
        self.assertEqual(Checkpoint.parse(None, 1), Checkpoint(1))

    def test_another_version_is_migrated_or_refused_with_a_way_out(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            Checkpoint.parse('{"version":7,"streams":{}}', 1)
        self.assertEqual(caught.exception.message, "the checkpoint has version 7, this collector reads version 1; reset the source's checkpoint to start over")
        migrated = Checkpoint.parse('{"cursor":"old"}', 1, lambda found, value: Checkpoint(1) if found == 0 else None)
        self.assertEqual(migrated, Checkpoint(1))

    def test_text_that_is_not_a_checkpoint_is_a_config_error(self) -> None:
        for text in ["not json", "[]", '{"version":1,"streams":[]}', '{"version":1,"streams":{"e":{"not_before_ms":"soon"}}}']:
            with self.assertRaises(ConfigError, msg=text) as caught:
                Checkpoint.parse(text, 1)
            self.assertIn("reset the source's checkpoint to start over", caught.exception.message)


if __name__ == "__main__":
    unittest.main()
