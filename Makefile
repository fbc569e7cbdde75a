# meshlab: `make up` brings the lab up on a fresh machine, `make test` runs every test including the
# kind end-to-end run. Both install what they need (Docker engine, debootstrap) when run as root on Debian.

GO        ?= go
BIN       := bin/meshlab
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS   := -s -w -X github.com/meshlab/meshlab/version.Version=$(VERSION)
CLUSTER   ?= meshlab
# Real istioctl, built once from the Go module proxy into the cache (the version the tests were written
# against); the e2e and the integration tests run it against meshlab.
ISTIOCTL_MODULE := istio.io/istio/istioctl/cmd/istioctl@v0.0.0-20260827124520-eed52ebb66ad
ISTIOCTL_DIR    ?= $(HOME)/.cache/meshlab/istioctl
ISTIOCTL        := $(ISTIOCTL_DIR)/istioctl
E2E_CLUSTER ?= meshlab-e2e
# The Gateway API conformance run (MESH-HTTP) gets its own cluster, created and deleted by the run, and
# writes the suite's report here (docs/conformance/README.md).
CONFORMANCE_CLUSTER ?= meshlab-conf
CONFORMANCE_REPORT  ?= $(CURDIR)/docs/conformance/meshlab-ambient-mesh-http-report.yaml
export CGO_ENABLED := 0

.PHONY: all build up down status test unit fuzz fidelity smoke e2e conformance vet fmt clean istioctl

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/meshlab

up: build
	$(BIN) up --offline --name $(CLUSTER)

down: build
	$(BIN) down --name $(CLUSTER)

status: build
	$(BIN) status --name $(CLUSTER)

test: vet istioctl unit fuzz fidelity smoke e2e conformance

# istioctl is not a dependency of meshlab's module: it is installed as a tool, outside the build.
istioctl: $(ISTIOCTL)
$(ISTIOCTL):
	GOBIN=$(ISTIOCTL_DIR) $(GO) install $(ISTIOCTL_MODULE)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	cd conformance && $(GO) vet ./...
	cd smoke && $(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

# Every native Go fuzz target, each for FUZZTIME (Go fuzzes one target per `go test` run), from its committed
# seeds; a crasher is written to the package's testdata/fuzz and fails the run. docs/fuzzing.md lists what
# each target checks and a longer run's figures. Minimizing new inputs is capped (10 runs) so that the time
# goes to fuzzing.
FUZZTIME ?= 10s
FUZZ_TARGETS := \
	./dataplane/hbone:FuzzServer \
	./dataplane/ztunnel/workloadxds:FuzzTranslate \
	./dataplane/l7:FuzzBuild \
	./internal/yamldoc:FuzzRead \
	./controlplane/inject:FuzzWebhook \
	./controlplane/render/tables:FuzzConfigDump
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10x $$pkg; \
	done

# The fidelity module (fidelity/, its own go.mod so that meshlab never depends on Istio) renders fixtures with
# Istio's generator and meshlab's and fails on any difference docs/fidelity.md does not list.
fidelity:
	cd fidelity && $(GO) vet ./... && $(GO) test -count=1 ./...

# The smoke test of meshlab's own image (smoke/, its own Go module: testcontainers-go) needs root and Docker: it
# packs bin/meshlab as `up` does, loads the tarball into Docker (nothing is pulled; no Ryuk reaper) and starts
# every component's container with the args, env, user and capabilities the cluster gives it. Seconds, so a
# broken image fails before the e2e spends minutes on a cluster. Its containers are named meshlab-smoke-*.
# On a fresh machine `host prepare` installs and starts Docker first, as `up` would.
smoke: build
	@$(BIN) host check >/dev/null 2>&1 || $(BIN) host prepare
	cd smoke && MESHLAB_SMOKE=1 MESHLAB_BIN=$(abspath $(BIN)) TESTCONTAINERS_RYUK_DISABLED=true \
		$(GO) test -count=1 -timeout 5m -parallel 8 -v .

# The end-to-end run needs root (Docker, kind) and builds the node image offline the first time (cached after).
e2e: build istioctl
	MESHLAB_E2E=1 MESHLAB_BIN=$(abspath $(BIN)) MESHLAB_E2E_CLUSTER=$(E2E_CLUSTER) MESHLAB_ISTIOCTL=$(ISTIOCTL) \
		$(GO) test -count=1 -timeout 80m -v ./e2e/...

# The upstream Gateway API conformance suite, profile MESH-HTTP, on a kind lab of its own (conformance/ is a
# separate Go module). The test creates the cluster and deletes it at the end unless it existed before.
conformance: build
	cd conformance && MESHLAB_CONFORMANCE=1 MESHLAB_BIN=$(abspath $(BIN)) MESHLAB_CONFORMANCE_CLUSTER=$(CONFORMANCE_CLUSTER) \
		MESHLAB_CONFORMANCE_REPORT=$(CONFORMANCE_REPORT) $(GO) test -count=1 -timeout 45m -v .

clean:
	rm -rf bin
