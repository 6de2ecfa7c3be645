#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, etcd, kubectl) from the Go
# modules pinned in hack/envtest/go.mod into a cache outside the checkout, and
# prints the directory. Later runs and fresh clones reuse the cache.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "k8s.io/kubernetes" {sub(/^v/, "", $2); print $2}' "${here}/envtest/go.mod")"
cache="${KUBEMDM_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/kubemdm}"
dir="${cache}/envtest/${version}"

build() { # name package
  local name="$1" pkg="$2"
  if [[ -x "${dir}/${name}" ]]; then return; fi
  echo "Building ${name} into ${dir} (first run only, a few minutes)" >&2
  (cd "${here}/envtest" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "${dir}/.${name}.tmp" "${pkg}")
  mv "${dir}/.${name}.tmp" "${dir}/${name}"
}

mkdir -p "${dir}"
# Concurrent callers (make test and make dev in two shells) wait for one build.
exec 9>"${dir}/.lock"
flock 9
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl k8s.io/kubernetes/cmd/kubectl
echo "${dir}"
