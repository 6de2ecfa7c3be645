#!/usr/bin/env bash
# Prints config/default built with kustomize (the path of its binary is the
# first argument), with the gateway's public address from GATEWAY_HOST and
# GATEWAY_PORT when they are given, without editing the checkout.
set -euo pipefail
kustomize=$1
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${GATEWAY_HOST:-}" ] && [ -z "${GATEWAY_PORT:-}" ]; then
	exec "$kustomize" build "$root/config/default"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/kustomization.yaml" <<YAML
resources:
  - $(realpath --relative-to="$work" "$root/config/default")
configMapGenerator:
  - name: gateway
    namespace: kubemdm-system
    behavior: merge
    literals:
$( [ -n "${GATEWAY_HOST:-}" ] && echo "      - host=$GATEWAY_HOST" )
$( [ -n "${GATEWAY_PORT:-}" ] && echo "      - port=$GATEWAY_PORT" )
YAML
"$kustomize" build "$work"
