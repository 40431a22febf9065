#!/usr/bin/env bash
# Usage: bash .ci/steps/10-chart-tools.sh   (run by .ci/run; installs helm v3 + v4 and checkov under .tools/, and the npm tools)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tools/install-helm.sh
bash tools/install-checkov.sh
# The chart README's values table generator (@bitnami/readme-generator-for-helm, package-lock.json).
npm ci --no-audit --no-fund --loglevel=error
