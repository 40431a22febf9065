#!/usr/bin/env bash
# Usage: KUBECTL_VERSION=v1.34.11 bash tests/e2e/install-kubectl.sh DIR   (that kubectl release into DIR, its checksum verified)
# make e2e needs a kubectl within one minor version of the cluster's Kubernetes (kubectl's
# version skew policy); `make e2e-kubectl` installs the one matching E2E_NODE_IMAGE. A
# version that is not published (the download answers 404) fails here, saying so.
set -euo pipefail
# shellcheck source=tests/e2e/download.sh
source "$(dirname "$0")/download.sh"

tool=kubectl
version="${KUBECTL_VERSION:?set KUBECTL_VERSION, e.g. v1.34.11}"
dest="${1:?the directory to install kubectl into}"
hint="releases: https://kubernetes.io/releases/; or install kubectl another way: https://kubernetes.io/docs/tasks/tools/"
if ! [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "KUBECTL_VERSION=$version is not a kubectl release (vX.Y.Z): with an E2E_NODE_IMAGE that has no version tag, set E2E_KUBECTL_VERSION or E2E_KUBECTL" >&2
  exit 1
fi
base="${KUBECTL_DOWNLOAD_BASE:-https://dl.k8s.io/release}/$version/bin/$(release_os)/$(release_arch)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
download "$base/kubectl" "$tmp/kubectl"
download "$base/kubectl.sha256" "$tmp/kubectl.sha256"
check_sha256 "$tmp" "$(cat "$tmp/kubectl.sha256")  kubectl"  # the .sha256 file: the bare digest
mkdir -p "$dest"
install -m 0755 "$tmp/kubectl" "$dest/kubectl"
"$dest/kubectl" version --client
