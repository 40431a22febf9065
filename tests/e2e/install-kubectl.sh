#!/usr/bin/env bash
# Usage: KUBECTL_VERSION=v1.34.11 bash tests/e2e/install-kubectl.sh DIR   (that kubectl release into DIR, its checksum verified)
# make e2e needs a kubectl within one minor version of the cluster's Kubernetes (kubectl's
# version skew policy); `make e2e-kubectl` installs the one matching E2E_NODE_IMAGE. A
# version that is not published (the download answers 404) fails here, saying so.
set -euo pipefail

version="${KUBECTL_VERSION:?set KUBECTL_VERSION, e.g. v1.34.11}"
dest="${1:?the directory to install kubectl into}"
if ! [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "KUBECTL_VERSION=$version is not a kubectl release (vX.Y.Z): with an E2E_NODE_IMAGE that has no version tag, set E2E_KUBECTL_VERSION or E2E_KUBECTL" >&2
  exit 1
fi
os="$(uname -s | tr '[:upper:]' '[:lower:]')"
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "no kubectl release for $(uname -m): https://kubernetes.io/docs/tasks/tools/" >&2; exit 1 ;;
esac
base="${KUBECTL_DOWNLOAD_BASE:-https://dl.k8s.io/release}/$version/bin/$os/$arch"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fetch() {  # fetch URL FILE: prints the HTTP status (000: no answer)
  curl -sSL --retry 3 -o "$2" -w '%{http_code}' "$1" || true
}
for file in kubectl kubectl.sha256; do
  code="$(fetch "$base/$file" "$tmp/$file")"
  if [ "${code:-000}" = 000 ]; then
    echo "kubectl $version: no answer from $base/$file (offline, or a proxy in the way?)" >&2
    exit 1
  elif [ "$code" != 200 ]; then
    echo "kubectl $version: $base/$file answered HTTP $code: is $version a published release?" >&2
    echo "releases: https://kubernetes.io/releases/; or install kubectl another way: https://kubernetes.io/docs/tasks/tools/" >&2
    exit 1
  fi
done
# The .sha256 file holds the bare digest.
if command -v sha256sum >/dev/null; then
  (cd "$tmp" && echo "$(cat kubectl.sha256)  kubectl" | sha256sum -c)
else
  (cd "$tmp" && echo "$(cat kubectl.sha256)  kubectl" | shasum -a 256 -c)
fi
mkdir -p "$dest"
install -m 0755 "$tmp/kubectl" "$dest/kubectl"
"$dest/kubectl" version --client
