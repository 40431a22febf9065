#!/usr/bin/env bash
# Usage: DOCKER="$(bash tests/container/standins/docker-client.sh)"   (prints a docker CLI that can build with BuildKit)
# A machine may carry two docker clients: a newer one without the buildx plugin (it refuses
# DOCKER_BUILDKIT=1) ahead of Debian's docker.io 20.10 client, whose BuildKit is built in.
# Print the first client on PATH that can do a BuildKit build; fall back to plain `docker`.
set -euo pipefail

declare -A seen=()
while IFS= read -r candidate; do
  real="$(readlink -f "$candidate")"
  [ -n "${seen[$real]:-}" ] && continue
  seen[$real]=1
  if "$candidate" buildx version >/dev/null 2>&1; then
    echo "$candidate"
    exit 0
  fi
  version="$("$candidate" version --format '{{.Client.Version}}' 2>/dev/null || true)"
  major="${version%%.*}"
  if [[ "$major" =~ ^[0-9]+$ ]] && [ "$major" -ge 18 ] && [ "$major" -lt 23 ]; then
    echo "$candidate"
    exit 0
  fi
done < <(type -aP docker)
echo docker
