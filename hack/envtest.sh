#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, etcd, kubectl) from the Go
# modules pinned in hack/envtest/go.mod into a cache outside the checkout, and
# prints the directory. Later runs and fresh clones reuse the cache.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "k8s.io/kubernetes" {sub(/^v/, "", $2); print $2}' "${here}/envtest/go.mod")"
cache="${KUBEMDM_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/kubemdm}"
dir="${cache}/envtest/${version}"

# kube-apiserver and kubectl carry their release in the version packages, so
# `kubectl version` and the apiserver's /version say v1.36.3, not v0.0.0-master.
version_ldflags() {
  local x="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X ${pkg}.gitVersion=v${version} -X ${pkg}.gitMajor=${version%%.*}"
    x+=" -X ${pkg}.gitMinor=$(cut -d. -f2 <<<"${version}") -X ${pkg}.gitTreeState=clean"
  done
  echo "${x}"
}

build() { # name package [extra ldflags]
  local name="$1" pkg="$2" ldflags="-s -w ${3:-}"
  # A stamp records how the binary was built, so a changed recipe rebuilds it.
  if [[ -x "${dir}/${name}" && "$(cat "${dir}/.${name}.stamp" 2>/dev/null)" == "${ldflags}" ]]; then return; fi
  echo "Building ${name} into ${dir} (first run only, a few minutes)" >&2
  (cd "${here}/envtest" && CGO_ENABLED=0 go build -trimpath -ldflags="${ldflags}" -o "${dir}/.${name}.tmp" "${pkg}")
  mv "${dir}/.${name}.tmp" "${dir}/${name}"
  echo "${ldflags}" >"${dir}/.${name}.stamp"
}

mkdir -p "${dir}"
# Concurrent callers (make test and make dev in two shells) wait for one build.
exec 9>"${dir}/.lock"
flock 9
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$(version_ldflags)"
build kubectl k8s.io/kubernetes/cmd/kubectl "$(version_ldflags)"
echo "${dir}"
