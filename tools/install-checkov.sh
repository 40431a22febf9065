#!/usr/bin/env bash
# Usage: bash tools/install-checkov.sh   (idempotent; checkov in its own venv at .tools/checkov-venv)
# checkov pins dependencies that clash with the app's, so it never goes into .venv.
# Run it as .tools/bin/checkov (a link into that venv).
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
VENV=.tools/checkov-venv
BIN_DIR=.tools/bin
PYTHON="${PYTHON:-python3}"

mkdir -p "$BIN_DIR"
if [ -x "$VENV/bin/checkov" ] && [ "$("$VENV/bin/checkov" --version 2>/dev/null)" = "$CHECKOV_VERSION" ]; then
  ln -sf "../checkov-venv/bin/checkov" "$BIN_DIR/checkov"
  echo "checkov $CHECKOV_VERSION already installed"
  exit 0
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --no-cache-dir --disable-pip-version-check -qq "checkov==$CHECKOV_VERSION"
ln -sf "../checkov-venv/bin/checkov" "$BIN_DIR/checkov"
echo "checkov $("$VENV/bin/checkov" --version) installed in $VENV"
