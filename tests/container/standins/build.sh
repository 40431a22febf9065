#!/usr/bin/env bash
# Usage: bash tests/container/standins/build.sh [--force]   (root + dockerd; builds or reuses the CI-only stand-in images)
# CI has no container registry, so the images the kit normally pulls are made here from
# Debian's own packages:
#   fastapi-app-standin/debian:bookworm   debootstrap --variant=minbase, slimmed, `docker import`
#   fastapi-app-standin/python:3.11       Debian's python3, python3-venv, pip; one flattened layer
#   fastapi-app-standin/postgres:15       Debian's PostgreSQL 15, official-image env contract
#   fastapi-app-standin/redis:7           Debian's Redis 7
# Each image carries a hash of the files it is built from; an image whose hash matches is
# reused (the cache between CI runs on the same machine), --force rebuilds all of them.
# The Debian mirror is the one this machine's apt uses (read at run time, never stored).
set -euo pipefail
cd "$(dirname "$0")"

PREFIX="${STANDIN_PREFIX:-fastapi-app-standin}"
SUITE=bookworm
DEBIAN_IMAGE="$PREFIX/debian:$SUITE"
PYTHON_IMAGE="$PREFIX/python:3.11"
POSTGRES_IMAGE="$PREFIX/postgres:15"
REDIS_IMAGE="$PREFIX/redis:7"
HASH_LABEL=org.fastapi-app.standin.hash
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1
DOCKER="${DOCKER:-$(bash ./docker-client.sh)}"

WORK_DIRS=()
cleanup() { [ "${#WORK_DIRS[@]}" = 0 ] || rm -rf "${WORK_DIRS[@]}"; }
trap cleanup EXIT

log() { printf '[standins] %s\n' "$*" >&2; }

content_hash() { cat "$@" | sha256sum | cut -c1-16; }

image_hash() {
  "$DOCKER" image inspect -f "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$1" 2>/dev/null || true
}

# fresh IMAGE HASH: true when IMAGE exists with HASH and no rebuild was forced.
fresh() {
  [ "$FORCE" = 0 ] && [ "$(image_hash "$1")" = "$2" ]
}

build_debian() {
  local hash="$1" mirror work
  mirror="${STANDIN_APT_MIRROR:-$(python3 ./apt_mirror.py "$SUITE")}"
  work="$(mktemp -d /var/tmp/standin-rootfs.XXXXXX)"
  WORK_DIRS+=("$work")
  log "debootstrap --variant=minbase $SUITE (mirror from the apt configuration)"
  debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    return 1
  }
  local root="$work/rootfs"
  # Slim it the way Debian's official images are: no docs, man pages, locales or apt caches,
  # in this layer and in every package installed on top of it.
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Install-Recommends "false";
Acquire::Languages "none";
EOF
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
    "$root"/tmp/* "$root"/var/tmp/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  tar --numeric-owner -C "$root" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["bash"]' \
    --change "LABEL $HASH_LABEL=$hash" \
    - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$work"
}

# The Python stand-in is flattened to a single layer (run, export, import) so that the
# app image's `docker history` shows exactly one base layer under the app's own.
build_python() {
  local hash="$1" name="standin-python-$$"
  "$DOCKER" rm -f "$name" >/dev/null 2>&1 || true
  "$DOCKER" run --name "$name" -e DEBIAN_FRONTEND=noninteractive "$DEBIAN_IMAGE" sh -euc '
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3 python3-venv python3-pip >/dev/null
    rm -rf /var/lib/apt/lists/* /root/.cache /tmp/* /var/log/*.log /var/log/apt/*
  '
  "$DOCKER" export "$name" | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --change "LABEL $HASH_LABEL=$hash" \
    - "$PYTHON_IMAGE" >/dev/null
  "$DOCKER" rm -f "$name" >/dev/null
}

build_postgres() {
  DOCKER_BUILDKIT=1 "$DOCKER" build -q -f Dockerfile.postgres --build-arg "BASE_IMAGE=$DEBIAN_IMAGE" \
    --label "$HASH_LABEL=$1" -t "$POSTGRES_IMAGE" . >/dev/null
}

build_redis() {
  DOCKER_BUILDKIT=1 "$DOCKER" build -q -f Dockerfile.redis --build-arg "BASE_IMAGE=$DEBIAN_IMAGE" \
    --label "$HASH_LABEL=$1" -t "$REDIS_IMAGE" . >/dev/null
}

# ensure IMAGE HASH BUILDER [ARGS...]: build IMAGE unless a fresh copy exists; report timing.
ensure() {
  local image="$1" hash="$2" builder="$3" started
  shift 3
  if fresh "$image" "$hash"; then
    log "$image: cached"
    return 0
  fi
  started=$SECONDS
  log "$image: building"
  "$builder" "$hash" "$@"
  log "$image: built in $((SECONDS - started)) s"
}

started=$SECONDS
debian_hash="$(content_hash build.sh apt_mirror.py)"
ensure "$DEBIAN_IMAGE" "$debian_hash" build_debian
# Every other image depends on the Debian one: its hash is part of theirs.
ensure "$PYTHON_IMAGE" "$(echo "$debian_hash" | content_hash build.sh -)" build_python
ensure "$POSTGRES_IMAGE" "$(echo "$debian_hash" | content_hash Dockerfile.postgres postgres-entrypoint.sh -)" \
  build_postgres
ensure "$REDIS_IMAGE" "$(echo "$debian_hash" | content_hash Dockerfile.redis -)" build_redis
log "stand-in images ready in $((SECONDS - started)) s"
