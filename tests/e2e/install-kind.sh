#!/usr/bin/env bash
# Usage: KIND_VERSION=v0.33.0 bash tests/e2e/install-kind.sh DIR   (the pinned kind release into DIR, its checksum verified)
# A version that is not published (the download answers 404) fails here, saying where the
# releases are and how else to install kind, instead of with curl's bare exit status.
set -euo pipefail
# shellcheck source=tests/e2e/download.sh
source "$(dirname "$0")/download.sh"

tool=kind
version="${KIND_VERSION:?set KIND_VERSION, e.g. v0.33.0}"
dest="${1:?the directory to install kind into}"
base="${KIND_DOWNLOAD_BASE:-https://github.com/kubernetes-sigs/kind/releases/download}/$version"
hint="releases: https://github.com/kubernetes-sigs/kind/releases; or install kind another way: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"

asset="kind-$(release_os)-$(release_arch)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
download "$base/$asset" "$tmp/$asset"
download "$base/$asset.sha256sum" "$tmp/$asset.sha256sum"
check_sha256 "$tmp" "$(cat "$tmp/$asset.sha256sum")"
mkdir -p "$dest"
install -m 0755 "$tmp/$asset" "$dest/kind"
"$dest/kind" version
