#!/usr/bin/env bash
# Native tests of the Python SDK and of every Python collector (unittest, no
# wasm): the SDK's against a fake of the componentize-py bindings, each
# collector's against a simulated vendor through siphon_sdk.testing.FakeIo.
# Each directory's tests run in their own interpreter, so helper module names
# only need to be unique within one directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}
status=0
for dir in "$here"/*/; do
    dir=${dir%/}
    [ -d "$dir/tests" ] || continue
    echo "==> python tests: guests/python/$(basename "$dir")"
    PYTHONPATH="$here/sdk:$dir:$dir/tests" PYTHONDONTWRITEBYTECODE=1 \
        "$python" -m unittest discover -q -s "$dir/tests" -t "$dir/tests" || status=1
done
exit $status
