#!/usr/bin/env bash
# Usage: bash .ci/steps/20-dockerd.sh   (run by .ci/run as root: starts dockerd, prebuilds the stand-in images)
# dockerd runs in the background (log: /var/log/dockerd-ci.log) and outlives this step, for
# the container tests. The stand-in images are reused when they are already there with the
# same content hash (cache between runs on one machine). Compose v2 joins Debian's v1.29.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd"
  setsid dockerd >/var/log/dockerd-ci.log 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    tail -n 30 /var/log/dockerd-ci.log >&2
    echo "dockerd did not come up in 60 s" >&2
    exit 1
  fi
fi
echo "dockerd $(docker version --format '{{.Server.Version}}')"

started=$SECONDS
bash tests/container/standins/build.sh
echo "stand-in images ready in $((SECONDS - started)) s"
bash tests/container/standins/install-compose-v2.sh
