#!/usr/bin/env bash
# Install componentize-py (PyPI; it builds Python collectors into components
# for the siphon:collector world, offline, from wit/) into a project-local
# virtualenv, like tests/gcs/install-emulator.sh does for the GCS emulator.
#
# Idempotent and quiet when the pinned version is already installed. Prints
# the tool's path on success. `COMPONENTIZE_PY_VENV` overrides the venv
# location (default: target/componentize-py-venv under the repository root).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${COMPONENTIZE_PY_VENV:-$root/target/componentize-py-venv}
version=0.25.1
python=${PYTHON:-python3}
tool=$venv/bin/componentize-py

if [ -x "$tool" ] && [ "$("$tool" --version 2>/dev/null)" = "componentize-py $version" ]; then
    echo "$tool"
    exit 0
fi

echo "==> installing componentize-py==$version into $venv" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
if ! log=$(timeout 600 "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version" 2>&1); then
    echo "$log" >&2
    echo "error: cannot install componentize-py==$version from PyPI" >&2
    exit 1
fi
"$tool" --version >/dev/null || { echo "error: $tool does not run" >&2; exit 1; }
echo "$tool"
