#!/usr/bin/env bash
# Usage: bash tools/hooks/helm-lint.sh   (the pre-commit hook: helm lint --strict with each values file)
# Without helm (`make tools` installs it) the hook is skipped with a line saying so, except
# under CI=true, where a missing tool is a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
chart=deploy/helm/fastapi-app
helm=$(command -v .tools/bin/helm || command -v helm || true)
if [ -z "$helm" ]; then
  echo "helm-lint: helm not found (make tools installs it)" >&2
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
fi
"$helm" lint --strict "$chart" --quiet
for values in "$chart"/ci/*.yaml; do
  "$helm" lint --strict "$chart" -f "$values" --quiet
done
