#!/usr/bin/env bash
# Usage: bash scripts/e2e.sh check-cluster|logs   (steps of `make e2e`; settings come from the variables make/e2e.mk exports)
#   check-cluster  the kind cluster maps the NodePort to this machine and its nodes are Ready
#   logs           save kind's node logs, every pod's log, resources and events (after a failure)
set -euo pipefail
cd "$(dirname "$0")/.."

KIND="${KIND:-kind}"
KIND_CLUSTER="${KIND_CLUSTER:-fastapi-app-e2e}"
E2E_CONTEXT="${E2E_CONTEXT:-kind-$KIND_CLUSTER}"
E2E_NODE_PORT="${E2E_NODE_PORT:-30080}"
E2E_ARTIFACTS="${E2E_ARTIFACTS:-var/e2e}"
E2E_KUBECTL="${E2E_KUBECTL:-kubectl}"
DOCKER="${DOCKER:-docker}"
kubectl=("$E2E_KUBECTL" --context "$E2E_CONTEXT")

check_cluster() {
  local node="$KIND_CLUSTER-control-plane" mapped
  if ! mapped="$("$DOCKER" port "$node" "$E2E_NODE_PORT/tcp" 2>&1)"; then
    echo "kind cluster $KIND_CLUSTER does not map NodePort $E2E_NODE_PORT to this machine" >&2
    echo "($mapped): it was not created from tests/e2e/kind-config.yaml." >&2
    echo "Use another KIND_CLUSTER, or delete it with: make e2e-down KIND_CLUSTER=$KIND_CLUSTER" >&2
    exit 1
  fi
  echo "NodePort $E2E_NODE_PORT -> $mapped"
  "${kubectl[@]}" wait --for=condition=Ready nodes --all --timeout=180s
  "${kubectl[@]}" get nodes -o wide
}

save_logs() {
  local dir="$E2E_ARTIFACTS/cluster-logs" clusters namespaces ns pods pod
  rm -rf "$dir"
  mkdir -p "$dir"
  clusters="$("$KIND" get clusters 2>/dev/null || true)"
  if ! grep -qxF "$KIND_CLUSTER" <<<"$clusters"; then
    echo "no kind cluster $KIND_CLUSTER: no cluster logs to save"
    return 0
  fi
  "$KIND" export logs "$dir/kind" --name "$KIND_CLUSTER" >/dev/null 2>&1 || echo "kind export logs failed"
  "${kubectl[@]}" get nodes,all,endpointslices,pdb,hpa,networkpolicies -A -o wide >"$dir/resources.txt" 2>&1 || true
  "${kubectl[@]}" get events -A --sort-by=.lastTimestamp >"$dir/events.txt" 2>&1 || true
  "${kubectl[@]}" describe pods -A >"$dir/pods-described.txt" 2>&1 || true
  namespaces="$("${kubectl[@]}" get namespaces -o jsonpath='{.items[*].metadata.name}' 2>/dev/null || true)"
  for ns in $namespaces; do
    case "$ns" in kube-* | local-path-storage) continue ;; esac
    pods="$("${kubectl[@]}" -n "$ns" get pods -o jsonpath='{.items[*].metadata.name}' 2>/dev/null || true)"
    for pod in $pods; do
      "${kubectl[@]}" -n "$ns" logs "$pod" --all-containers --prefix >"$dir/$ns.$pod.log" 2>&1 || true
      if ! "${kubectl[@]}" -n "$ns" logs "$pod" --all-containers --prefix --previous \
        >"$dir/$ns.$pod.previous.log" 2>/dev/null; then
        rm -f "$dir/$ns.$pod.previous.log"
      fi
    done
  done
  echo "cluster logs saved in $dir"
}

case "${1:-}" in
  check-cluster) check_cluster ;;
  logs) save_logs ;;
  *)
    sed -n '2,4p' "$0" >&2
    exit 2
    ;;
esac
