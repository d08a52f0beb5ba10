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

.PHONY: build test test-unit test-vm vm-kit bench bench-vrrp bench-vm demo deps vet fmt-check clean

build:
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/...

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
test-vm: vm-kit build
	@for k in $(VM_KERNELS); do \
		echo "test-vm: kernel $$k"; \
		VM_KERNEL=$$k $(GO) test -count=1 -p 1 -tags vmtest -run '^TestVM' -timeout 40m -exec $(VM_RUN) $(VM_PKGS) || exit 1; \
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
	rm -rf bin
