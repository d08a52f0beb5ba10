# lvskit entry points. `make test` is the README's test command: all three
# tiers (unit, network namespaces as root, kernel VM).
GO        ?= go
VM_RUN    := $(CURDIR)/scripts/vm/run
VM_KERNEL ?= 6.12
export VM_KERNEL
# The kernels the VM tier runs on, every time: Debian's 6.12 (bookworm-
# security) and 6.1 (bookworm). `make test-vm VM_KERNELS=6.12` runs one.
VM_KERNELS ?= 6.12 6.1
# Packages with kernel-VM tests (files tagged vmtest); each boots the VM once.
VM_PKGS    = $(shell grep -rl --include='*_test.go' '^//go:build vmtest' . | xargs -r -n1 dirname | sort -u)
BENCH_PKGS = ./director/ ./director/ipvs/ ./director/health/ ./director/config/ ./tui/
# The version --version prints and the .deb carries (git describe).
VERSION   := $(shell packaging/version.sh)
LDFLAGS    = -X github.com/lvskit/lvskit/internal/buildinfo.version=$(VERSION)
# The pages' and the changelog's date: the last commit's, so the same
# commit builds the same .deb contents.
DOC_DATE  := $(shell git log -1 --format=%cs 2>/dev/null || date -u +%F)
MAINTAINER ?= lvskit developers <lvskit@users.noreply.github.com>
DEB        = build/lvskit_$(VERSION)_amd64.deb
NFPM       = $(GO) tool -modfile=packaging/tools/go.mod nfpm
FUZZTIME  ?= 1m

.PHONY: build test test-unit test-vm vm-kit bench bench-vrrp bench-vm demo deps vet fmt-check clean \
	man deb lint-deb test-deb fuzz

build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

# Man pages, bash completions, the default /etc/lvsd/lvsd.yaml and the
# Debian changelog, from the binaries' --help and examples/reference.yaml.
man: build
	$(GO) run ./packaging/docgen -bin bin -reference examples/reference.yaml -out build/doc \
		-version '$(VERSION)' -date '$(DOC_DATE)' -maintainer '$(MAINTAINER)'

# build/lvskit_<version>_amd64.deb (nfpm, from packaging/nfpm.yaml).
deb: build man
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS) -s -w' -o build/bin/ ./cmd/...
	rm -f build/lvskit_*.deb
	LVSKIT_VERSION='$(VERSION)' LVSKIT_MAINTAINER='$(MAINTAINER)' \
		$(NFPM) package --config packaging/nfpm.yaml --packager deb --target $(DEB)
	@echo "built $(DEB)"

# lintian (Debian's package checker) must report no errors.
lint-deb: deb
	lintian --fail-on error $(DEB)

# Installs the .deb in the VM and runs lvsd as the unit would.
test-deb: vm-kit deb
	LVSKIT_DEB=$(CURDIR)/$(DEB) $(GO) test -count=1 -tags vmtest -run '^TestVMDeb' -timeout 20m -exec $(VM_RUN) ./packaging/

# Every fuzz target in the repository for FUZZTIME each (default 1m):
# make fuzz FUZZTIME=10m. New interesting inputs land in each package's
# testdata/fuzz; commit them.
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

vet:
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	$(GO) vet -tags vmtest ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Unit tier everywhere; network tier too when run as root (those tests skip
# with the reason otherwise).
test-unit: fmt-check vet
	$(GO) test -count=1 ./...

vm-kit:
	@for k in $(VM_KERNELS); do VM_KERNEL=$$k scripts/vm/prepare-kit.sh || exit 1; done

# -p 1: each VM takes both cores. Each kernel in VM_KERNELS in turn.
# The .deb is built first: packaging/'s VM test installs it.
test-vm: vm-kit build deb
	@for k in $(VM_KERNELS); do \
		echo "test-vm: kernel $$k"; \
		VM_KERNEL=$$k LVSKIT_DEB=$(CURDIR)/$(DEB) $(GO) test -count=1 -p 1 -tags vmtest -run '^TestVM' -timeout 40m -exec $(VM_RUN) $(VM_PKGS) || exit 1; \
	done

test: build test-unit test-vm

bench:
	$(GO) test -run '^$$' -bench . -skip '^BenchmarkLab' -benchmem $(BENCH_PKGS)
	bench/conntable.sh
	bench/lvstop.sh
	$(MAKE) bench-vrrp
	$(MAKE) bench-vm

# VRRP takeover, lvsd against keepalived, on the lab bridge (root,
# keepalived; about 8 minutes; LVSKIT_VRRP_TRIALS=20 trials a side).
bench-vrrp: build
	$(GO) test -count=1 -run '^$$' -bench '^BenchmarkLabTakeover$$' -benchtime 1x -timeout 30m ./director/

bench-vm: vm-kit build
	$(GO) test -p 1 -tags vmtest -run '^$$' -bench '^BenchmarkVM' -benchtime 1x -timeout 40m -exec $(VM_RUN) $(VM_PKGS)

# Two lvsd directors, two real servers and a client in the VM: traffic,
# lvstop, lvsdiag and a failover (about a minute).
demo:
	scripts/demo.sh

deps:
	scripts/install-deps.sh

clean:
	rm -rf bin build
