# Two commands for a newcomer: `make dev` and `make test`. Everything else is for operators
# and auditors (see README.md). Each target installs what it needs when it is missing.

SHELL := /bin/bash
NODE_TEST := node --import tsx --test --test-concurrency=2 --test-timeout=120000
TEST_FILES = $(shell find protocol enclave parent client scripts test -name '*.test.ts' -not -path '*/node_modules/*' 2>/dev/null | sort)

.PHONY: deps system-deps dev test typecheck boundaries unit coverage bench clean

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.installed system-deps

system-deps:
	@scripts/ensure-system-deps.sh

typecheck: deps
	npx tsc -p tsconfig.json --noEmit

boundaries: deps
	npx tsx scripts/check-boundaries.ts

# Runs every test once under c8; fails below 95% line coverage of protocol/, enclave/, parent/, client/.
test: typecheck boundaries
	rm -rf coverage
	npx c8 $(NODE_TEST) $(TEST_FILES)

dev: deps
	npx tsx scripts/dev-stack.ts

bench: deps
	npx tsx scripts/bench-core.ts

clean:
	rm -rf coverage .dev node_modules/.installed
