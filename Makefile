# kubemdm: mobile device management as a Kubernetes operator.

IMG ?= ghcr.io/kubemdm/kubemdm:dev
CONTAINER_TOOL ?= docker

# Pinned tool versions; each is installed into ./bin by the Makefile itself.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.2
BUF_VERSION ?= v1.75.0
PROTOC_GEN_GO_VERSION ?= v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION ?= v1.21.1
NFPM_VERSION ?= v2.45.2
HELM_VERSION ?= v4.3.2
# The Prometheus Operator whose CRDs (ServiceMonitor, PrometheusRule) the
# install tests load to check config/prometheus and the chart's objects.
PROMETHEUS_OPERATOR_VERSION ?= v0.89.0
KREW_VERSION ?= v0.4.3

LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
BUF ?= $(LOCALBIN)/buf-$(BUF_VERSION)
PROTOC_GEN_GO ?= $(LOCALBIN)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION)
PROTOC_GEN_CONNECT_GO ?= $(LOCALBIN)/protoc-gen-connect-go-$(PROTOC_GEN_CONNECT_GO_VERSION)
NFPM ?= $(LOCALBIN)/nfpm-$(NFPM_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
PROMETHEUS_CRDS ?= $(LOCALBIN)/prometheus-crds-$(PROMETHEUS_OPERATOR_VERSION)
KREW ?= $(LOCALBIN)/krew-$(KREW_VERSION)

# The local control plane (kube-apiserver, etcd, kubectl) is built from Go
# modules into a cache outside the checkout; see hack/envtest.sh.
ENVTEST_ASSETS = $(shell hack/envtest.sh)
KUBECTL ?= $(ENVTEST_ASSETS)/kubectl

# go-install-tool installs a pinned Go command into $(LOCALBIN) under the
# target's versioned name, so that a new pin builds anew.
# $(1): package, $(2): version, $(3): the command's name.
define go-install-tool
mkdir -p $(LOCALBIN)
GOBIN=$(LOCALBIN) go install $(1)@$(2)
mv $(LOCALBIN)/$(3) $@
endef

GO_TEST_FLAGS ?= -race
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs, RBAC and webhook configuration.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen protoc-plugins ## Generate deepcopy code and the agent protocol's Go and Connect code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."
	$(BUF) generate

.PHONY: protoc-plugins
protoc-plugins: $(BUF) $(PROTOC_GEN_GO) $(PROTOC_GEN_CONNECT_GO)
	@ln -sf $(notdir $(PROTOC_GEN_GO)) $(LOCALBIN)/protoc-gen-go
	@ln -sf $(notdir $(PROTOC_GEN_CONNECT_GO)) $(LOCALBIN)/protoc-gen-connect-go

.PHONY: verify-generated
verify-generated: generate manifests chart ## Fail when committed generated files are stale.
	@test -z "$$(git status --porcelain -- api config dist/chart)" || { git status --porcelain -- api config dist/chart; git diff -- api config dist/chart | head -40; echo "Generated files are stale: run 'make generate manifests chart' and commit"; exit 1; }

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: envtest
envtest: ## Build the local control plane into the cache (first run only).
	@hack/envtest.sh >/dev/null

# The scale harness runs on its own, after the other suites and without the
# race detector, so that its timed ratios measure the system, not the
# machine's other load or the detector's overhead.
TEST_PACKAGES = $(shell go list ./... | grep -v /test/scale)

.PHONY: test
test: manifests generate vet envtest kustomize helm nfpm ## Run unit and envtest suites against a real kube-apiserver and etcd, then the scale harness's small profile.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test $(GO_TEST_FLAGS) -timeout 30m $(TEST_PACKAGES) -coverprofile cover.out
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test ./test/scale -count=1 -timeout 30m -v
	$(MAKE) check-rules

# make agent-packages writes the agent's .deb and .rpm into PACKAGE_DIR.
PACKAGE_DIR ?= dist/packages
AGENT_VERSION ?= 0.1.0
GOARCH ?= $(shell go env GOARCH)

.PHONY: agent-packages
agent-packages: nfpm ## Build the agent's .deb and .rpm (systemd unit, /etc/default file, 0700 state directory) into PACKAGE_DIR.
	mkdir -p $(PACKAGE_DIR)
	stage=$$(mktemp -d); trap 'rm -rf "$$stage"' EXIT; \
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) go build -trimpath -ldflags "-X github.com/kubemdm/kubemdm/agent.Version=v$(AGENT_VERSION)" \
		-o $$stage/kubemdm-agent ./cmd/kubemdm-agent; \
	sed "s|\$${AGENT_BINARY}|$$stage/kubemdm-agent|" hack/packaging/nfpm.yaml > $$stage/nfpm.yaml; \
	for p in deb rpm; do \
		VERSION=$(AGENT_VERSION) GOARCH=$(GOARCH) $(NFPM) package --config $$stage/nfpm.yaml --packager $$p --target $(PACKAGE_DIR)/; \
	done

.PHONY: chart
chart: manifests kustomize ## Write the Helm chart's templates (dist/chart/templates) from config/.
	{ $(KUSTOMIZE) build config/default; echo ---; $(KUSTOMIZE) build config/prometheus; } | go run ./hack/chart dist/chart/templates

.PHONY: check-rules
check-rules: kustomize ## Build config/prometheus and check its alerting rules and their tests with promtool.
	$(KUSTOMIZE) build config/prometheus > /dev/null
	bash hack/check-rules.sh

# make test runs the fault-injection suite on 100 devices; make fault on
# FAULT_DEVICES (1,000 unless given).
FAULT_DEVICES ?= 1000

.PHONY: fault
fault: envtest ## Run the fault-injection suite (kill -9, apiserver restart, replica loss, cut streams) on FAULT_DEVICES devices.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" FAULT_DEVICES=$(FAULT_DEVICES) go test ./test/fault -count=1 -timeout 60m -v -ginkgo.v

# make scale runs the scale harness on DEVICES connected devices next to
# REGISTERED pre-registered Device objects and prints its table; see
# docs/scale.md. SCALE_MARGIN loosens the noisy targets, times and memory (1: none).
DEVICES ?= 1000
REGISTERED ?= 10000
SCALE_MARGIN ?= 1

.PHONY: scale
scale: envtest ## Measure the system at fleet size (DEVICES, REGISTERED) against a same-run apiserver baseline.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" SCALE_DEVICES=$(DEVICES) SCALE_REGISTERED=$(REGISTERED) SCALE_MARGIN=$(SCALE_MARGIN) \
		go test ./test/scale -count=1 -timeout 90m -v -run TestScale

FUZZTIME ?= 20s

.PHONY: fuzz
fuzz: ## Run the fuzz targets briefly (FUZZTIME each).
	go test ./gateway -run '^$$' -fuzz FuzzHandler -fuzztime $(FUZZTIME)
	go test ./gateway -run '^$$' -fuzz FuzzDevice -fuzztime $(FUZZTIME)
	go test ./gateway -run '^$$' -fuzz FuzzSubscribeFraming -fuzztime $(FUZZTIME)
	go test ./internal/enrollment -run '^$$' -fuzz FuzzWellFormed -fuzztime $(FUZZTIME)
	go test ./internal/enrollment -run '^$$' -fuzz FuzzVerify -fuzztime $(FUZZTIME)
	go test ./internal/pki -run '^$$' -fuzz FuzzParseCSR -fuzztime $(FUZZTIME)

.PHONY: bench
bench: envtest ## Run the benchmarks against the local control plane.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test ./... -run '^$$' -bench . -benchtime 3s

# Where make dev serves the gateway (and names it in enrollment payloads) and
# the manager's health probes, and where it keeps its kubeconfig and logs.
GATEWAY_ADDR ?= 127.0.0.1:7443
DEV_DIR ?= .dev
PROBE_ADDR ?= 127.0.0.1:18081

.PHONY: dev
dev: build envtest ## Run the whole system on a local control plane (GATEWAY_ADDR, PROBE_ADDR, DEV_DIR).
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" ./bin/kubemdm-dev --gateway $(GATEWAY_ADDR) --probe-address $(PROBE_ADDR) --state-dir $(DEV_DIR)

##@ Build

.PHONY: build
build: ## Build the manager, the agent, the kubectl plugin and the dev launcher.
	go build -o bin/manager ./cmd/manager
	go build -o bin/kubemdm-agent ./cmd/kubemdm-agent
	go build -o bin/kubectl-mdm ./cmd/kubectl-mdm
	go build -o bin/kubemdm-dev ./hack/dev

PLUGIN_VERSION ?= 0.1.0
PLUGIN_URL ?= https://github.com/kubemdm/kubemdm/releases/download/v$(PLUGIN_VERSION)

# make plugin-archives writes them into PLUGIN_DIR, for PLUGIN_PLATFORMS.
PLUGIN_DIR ?= dist/krew
PLUGIN_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

.PHONY: plugin-archives
plugin-archives: ## Build kubectl-mdm archives (binary and LICENSE) for PLUGIN_PLATFORMS and their krew manifest into PLUGIN_DIR.
	mkdir -p $(PLUGIN_DIR)
	platforms=""; \
	for platform in $(PLUGIN_PLATFORMS); do \
		os=$${platform%/*}; arch=$${platform#*/}; \
		stage=$$(mktemp -d); \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -o $$stage/kubectl-mdm ./cmd/kubectl-mdm; \
		cp LICENSE $$stage/; \
		tar -C $$stage -czf $(PLUGIN_DIR)/kubectl-mdm_$${os}_$${arch}.tar.gz .; rm -rf $$stage; \
		sum=$$(sha256sum $(PLUGIN_DIR)/kubectl-mdm_$${os}_$${arch}.tar.gz | cut -d' ' -f1); \
		platforms="$$platforms  - selector:\n      matchLabels:\n        os: $$os\n        arch: $$arch\n    uri: $(PLUGIN_URL)/kubectl-mdm_$${os}_$${arch}.tar.gz\n    sha256: $$sum\n    bin: kubectl-mdm\n"; \
	done; \
	VERSION=$(PLUGIN_VERSION) PLATFORMS="$$(printf "$$platforms")" envsubst '$${VERSION} $${PLATFORMS}' < hack/krew/mdm.yaml.tmpl > $(PLUGIN_DIR)/mdm.yaml

# krew, to install the plugin from its manifest and archive in the tests.
.PHONY: krew
krew: $(KREW)
$(KREW):
	$(call go-install-tool,sigs.k8s.io/krew/cmd/krew,$(KREW_VERSION),krew)

.PHONY: run
run: manifests ## Run the manager against the cluster in ~/.kube/config.
	go run ./cmd/manager --enable-webhooks=false

.PHONY: docker-build
docker-build: ## Build the manager image.
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: build-installer
# The gateway's public address (enrollment payloads, its certificate); the
# default is config/default's gateway ConfigMap.
GATEWAY_HOST ?=
GATEWAY_PORT ?=

build-installer: manifests kustomize ## Write dist/install.yaml with CRDs, RBAC and the manager (GATEWAY_HOST, GATEWAY_PORT).
	mkdir -p dist
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	GATEWAY_HOST=$(GATEWAY_HOST) GATEWAY_PORT=$(GATEWAY_PORT) bash hack/kustomize-default.sh $(KUSTOMIZE) > dist/install.yaml

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install the CRDs into the cluster in ~/.kube/config.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Remove the CRDs from the cluster.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the manager to the cluster (GATEWAY_HOST, GATEWAY_PORT).
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	GATEWAY_HOST=$(GATEWAY_HOST) GATEWAY_PORT=$(GATEWAY_PORT) bash hack/kustomize-default.sh $(KUSTOMIZE) | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Remove the manager from the cluster.
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	$(call go-install-tool,sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION),controller-gen)

$(BUF):
	$(call go-install-tool,github.com/bufbuild/buf/cmd/buf,$(BUF_VERSION),buf)

$(PROTOC_GEN_GO):
	$(call go-install-tool,google.golang.org/protobuf/cmd/protoc-gen-go,$(PROTOC_GEN_GO_VERSION),protoc-gen-go)

$(PROTOC_GEN_CONNECT_GO):
	$(call go-install-tool,connectrpc.com/connect/cmd/protoc-gen-connect-go,$(PROTOC_GEN_CONNECT_GO_VERSION),protoc-gen-connect-go)

.PHONY: helm
helm: $(HELM)
$(HELM):
	$(call go-install-tool,helm.sh/helm/v4/cmd/helm,$(HELM_VERSION),helm)

# The two Prometheus Operator CRDs kubemdm's objects use, from the
# operator's Go module (fetched outside this module, so go.mod stays as is).
.PHONY: prometheus-crds
prometheus-crds: $(PROMETHEUS_CRDS)
$(PROMETHEUS_CRDS):
	mkdir -p $@.tmp
	tmp=$$(mktemp -d); src=$$(cd "$$tmp" && go mod download -json github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p'); rmdir "$$tmp"; \
	  cp "$$src/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" "$$src/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" $@.tmp/
	chmod -R u+w $@.tmp && mv $@.tmp $@

.PHONY: nfpm
nfpm: $(NFPM)
$(NFPM):
	$(call go-install-tool,github.com/goreleaser/nfpm/v2/cmd/nfpm,$(NFPM_VERSION),nfpm)

.PHONY: kustomize
kustomize: $(KUSTOMIZE)
$(KUSTOMIZE):
	$(call go-install-tool,sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION),kustomize)
