# kubegres-restore. `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/kubegres-restore
export KUBEGRES_RESTORE_CACHE := $(CACHE)
CARGO ?= cargo
SCALE ?= 50

.PHONY: all setup build test test-unit lint demo demo-agent localcluster bench bench-operator fmt clippy crds bundle

all: build

setup:
	@bash tests/scripts/setup.sh

build:
	$(CARGO) build --workspace --all-targets

## The full test suite: unit, component (real PostgreSQL, S3, HTTP) and lints.
test: setup
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --no-fail-fast -- --test-threads=4
	@$(MAKE) --no-print-directory lint

test-unit:
	$(CARGO) test --workspace --lib --bins

lint:
	$(CARGO) fmt --all -- --check
	python3 tests/scripts/module-cycles.py restore-agent/src
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CACHE)/venv/bin/hadolint Dockerfile.agent
	$(CACHE)/venv/bin/hadolint Dockerfile.operator

fmt:
	$(CARGO) fmt --all

## The demo: a Kubegres backup of Pagila restored through the operator on the local cluster.
demo: setup
	$(CARGO) build -p restore-agent -p kubegres-restore-operator -p kubegres-restore-tests --bins
	target/debug/demo

## The agent alone: a Kubegres backup of Pagila restored into a PostgreSQL, with live progress.
demo-agent: setup
	$(CARGO) build --release -p restore-agent
	bash tests/scripts/demo.sh

## The local cluster in the foreground (Ctrl-C stops it): DIR=/tmp/kgr make localcluster
DIR ?= /tmp/kubegres-restore-local
localcluster: setup
	$(CARGO) build -p restore-agent -p kubegres-restore-operator -p kubegres-restore-tests --bins
	target/debug/localcluster up --dir $(DIR)

## Restore speed and memory: the agent beside gunzip|psql and pg_restore -j2.
bench: setup
	$(CARGO) build --release -p restore-agent
	SCALE=$(SCALE) bash tests/bench/restore-bench.sh

## The operator on the local control plane: RSS idle and with 1,000 restores, create-to-Pod latency.
bench-operator: setup
	$(CARGO) build --release -p kubegres-restore-operator
	$(CARGO) run -q -p kubegres-restore-tests --bin operator-bench -- --operator target/release/kubegres-restore-operator $(OPERATOR_BENCH_ARGS)

## The CRD in deploy/crds, generated from the types in proto/src/crd (a test fails when it drifts).
crds:
	$(CARGO) run -q -p kubegres-restore-operator --bin crdgen > deploy/crds/kubegres-restore.yaml.tmp
	mv deploy/crds/kubegres-restore.yaml.tmp deploy/crds/kubegres-restore.yaml

## deploy/install.yaml: deploy/kustomization.yaml's resources in one file (a test fails when it drifts).
bundle:
	$(CARGO) run -q -p kubegres-restore-tests --bin bundle > deploy/install.yaml.tmp
	mv deploy/install.yaml.tmp deploy/install.yaml
