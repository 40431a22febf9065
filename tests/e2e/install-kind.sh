#!/usr/bin/env bash
# Usage: KIND_VERSION=v0.33.0 bash tests/e2e/install-kind.sh DIR   (the pinned kind release into DIR, its checksum verified)
# A version that is not published (the download answers 404) fails here, saying where the
# releases are and how else to install kind, instead of with curl's bare exit status.
set -euo pipefail

version="${KIND_VERSION:?set KIND_VERSION, e.g. v0.33.0}"
dest="${1:?the directory to install kind into}"
base="${KIND_DOWNLOAD_BASE:-https://github.com/kubernetes-sigs/kind/releases/download}/$version"
hint="releases: https://github.com/kubernetes-sigs/kind/releases; or install kind another way: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"

os="$(uname -s | tr '[:upper:]' '[:lower:]')"
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "no kind release for $(uname -m); $hint" >&2; exit 1 ;;
esac
asset="kind-$os-$arch"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fetch() {  # fetch URL FILE: prints the HTTP status (000: no answer)
  curl -sSL --retry 3 -o "$2" -w '%{http_code}' "$1" || true
}
for file in "$asset" "$asset.sha256sum"; do
  code="$(fetch "$base/$file" "$tmp/$file")"
  if [ "${code:-000}" = 000 ]; then
    echo "kind $version: no answer from $base/$file (offline, or a proxy in the way?)" >&2
    exit 1
  elif [ "$code" != 200 ]; then
    echo "kind $version: $base/$file answered HTTP $code: is $version a published release?" >&2
    echo "$hint" >&2
    exit 1
  fi
done
if command -v sha256sum >/dev/null; then
  (cd "$tmp" && sha256sum -c "$asset.sha256sum")
else
  (cd "$tmp" && shasum -a 256 -c "$asset.sha256sum")
fi
mkdir -p "$dest"
install -m 0755 "$tmp/$asset" "$dest/kind"
"$dest/kind" version
