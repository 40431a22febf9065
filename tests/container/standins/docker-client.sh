#!/bin/sh
# Usage: DOCKER="$(sh tests/container/standins/docker-client.sh)"   (prints a docker CLI that can build with BuildKit)
# A machine may carry two docker clients: a newer one without the buildx plugin (it refuses
# DOCKER_BUILDKIT=1) ahead of Debian's docker.io 20.10 client, whose BuildKit is built in.
# Print the first client on PATH that can do a BuildKit build; fall back to plain `docker`.
# POSIX sh (macOS runs /bin/sh as bash 3.2, without bash 4's features), checked with
# `shellcheck --shell=sh` and run under dash by tests/container/test_docker_client.py.
set -eu

seen='
'
old_ifs=$IFS
IFS=:
# shellcheck disable=SC2086 # PATH is split on ':' on purpose
set -- $PATH
IFS=$old_ifs
for dir in "$@"; do
  candidate="${dir:-.}/docker"
  if [ ! -f "$candidate" ] || [ ! -x "$candidate" ]; then
    continue
  fi
  real="$(readlink -f "$candidate" 2>/dev/null || echo "$candidate")"
  case "$seen" in
    *"
$real
"*) continue ;;
  esac
  seen="$seen$real
"
  if "$candidate" buildx version >/dev/null 2>&1; then
    echo "$candidate"
    exit 0
  fi
  version="$("$candidate" version --format '{{.Client.Version}}' 2>/dev/null || true)"
  major="${version%%.*}"
  case "$major" in
    '' | *[!0-9]*) continue ;;
  esac
  if [ "$major" -ge 18 ] && [ "$major" -lt 23 ]; then
    echo "$candidate"
    exit 0
  fi
done
echo docker
