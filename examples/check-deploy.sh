#!/usr/bin/env bash
# Check the deployable units in examples/ (run by `make check-deploy`, part of
# `make test`; needs target/debug/siphon and the collectors: `make build`):
#
#   systemd     systemd-analyze verify on examples/systemd/siphon.service, in a
#               scratch root holding systemd's own units and stand-ins for the
#               unit's commands (siphon is not installed on a build machine);
#               any warning fails. siphon check --offline on its siphon.toml.
#   prometheus  promtool check rules, then promtool test rules (each alert
#               fires on the series that should raise it).
#   kubernetes  siphon check --offline on the ConfigMap's siphon.toml, and
#               `kubectl kustomize` (when kubectl is installed) with the
#               Deployment's strategy and probes checked.
#
# The configs run with /opt/siphon/collectors/ read as target/guests/ and
# their secret files replaced by stand-ins; nothing else is changed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
siphon=${SIPHON_BIN:-$root/target/debug/siphon}
[ -x "$siphon" ] || { echo "error: $siphon is missing: run make build" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

step() { echo "==> $*"; }
fail() { echo "error: $*" >&2; exit 1; }

# siphon check --offline on a config, collectors and secret files redirected.
check_config() {
    local name=$1 config=$2 secrets_prefix=$3
    local dir=$scratch/$name
    mkdir -p "$dir/secrets"
    for f in $(grep -o "file = \"$secrets_prefix[^\"]*\"" "$config" | sed 's/.*"\(.*\)"/\1/'); do
        echo "stand-in-secret-for-check" > "$dir/secrets/$(basename "$f")"
    done
    sed -e "s#/opt/siphon/collectors/#$root/target/guests/#g" -e "s#$secrets_prefix#$dir/secrets/#g" \
        "$config" > "$dir/siphon.toml"
    timeout 120 "$siphon" check --offline --config "$dir/siphon.toml" | sed 's/^/    /'
}

step "systemd-analyze verify examples/systemd/siphon.service"
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (Debian package systemd)"
unit=examples/systemd/siphon.service
sysroot=$scratch/sysroot
mkdir -p "$sysroot/etc/systemd/system" "$sysroot/usr/lib/systemd"
cp -r /usr/lib/systemd/system "$sysroot/usr/lib/systemd/"
cp "$unit" "$sysroot/etc/systemd/system/"
for cmd in $(sed -n 's/^Exec[A-Za-z]*=[-@+!:]*\(\/[^ ]*\).*/\1/p' "$unit" | sort -u); do
    mkdir -p "$sysroot$(dirname "$cmd")"
    cp /bin/true "$sysroot$cmd"
done
out=$(timeout 60 systemd-analyze --root="$sysroot" verify siphon.service 2>&1) || fail "systemd-analyze verify failed:
$out"
[ -z "$out" ] || fail "systemd-analyze verify warns:
$out"
check_config systemd examples/systemd/siphon.toml /run/credentials/siphon.service/

step "promtool check rules / test rules examples/prometheus/"
command -v promtool >/dev/null || fail "promtool is missing: run make promtool"
timeout 60 promtool check rules examples/prometheus/siphon-rules.yml | sed 's/^/    /'
(cd examples/prometheus && timeout 60 promtool test rules siphon-rules.test.yml | sed 's/^/    /')

step "siphon check --offline on the Kubernetes ConfigMap's siphon.toml"
awk '/^  siphon.toml: \|/ { inside = 1; next }
     inside && /^    / { sub(/^    /, ""); print; next }
     inside && /^ *$/ { print ""; next }
     inside { exit }' examples/kubernetes/configmap.yaml > "$scratch/configmap-siphon.toml"
[ -s "$scratch/configmap-siphon.toml" ] || fail "no siphon.toml in examples/kubernetes/configmap.yaml"
check_config kubernetes "$scratch/configmap-siphon.toml" /etc/siphon/secrets/
grep -q "mountPath: /etc/siphon/secrets" examples/kubernetes/deployment.yaml || fail "the Deployment does not mount the secrets"
if command -v kubectl >/dev/null; then
    step "kubectl kustomize examples/kubernetes"
    manifests=$(timeout 60 kubectl kustomize examples/kubernetes)
    for want in "type: Recreate" "path: /healthz" "path: /readyz" "prometheus.io/scrape: \"true\"" \
        "runAsNonRoot: true" "iam.gke.io/gcp-service-account"; do
        grep -qF "$want" <<<"$manifests" || fail "the Kubernetes manifests lack \`$want\`"
    done
    echo "    ok: $(grep -c '^kind:' <<<"$manifests") resources"
else
    echo "    (kubectl not installed: kustomize build skipped)"
fi
