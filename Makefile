# Two commands for a newcomer: `make dev` and `make test`. Everything else is for operators
# and auditors (see README.md). Each target installs what it needs when it is missing.

SHELL := /bin/bash
NODE_TEST := node --import tsx --test --test-concurrency=2 --test-timeout=120000
TEST_FILES = $(shell find protocol enclave parent client emulators store issuer service common scripts test -name '*.test.ts' -not -path '*/node_modules/*' 2>/dev/null | sort)

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

# Runs every test once under c8; fails below 95% line coverage of protocol/, enclave/, parent/, client/, emulators/, store/, issuer/, service/.
test: typecheck boundaries
	rm -rf coverage
	npx c8 $(NODE_TEST) $(TEST_FILES)

dev: deps
	npx tsx scripts/dev-stack.ts

# Prints figures, never pass/fail: the enclave core (refresh against the crypto floor on one core
# and with the worker pool on every core, attest, key_request + unlock, the enclave's RSS with N
# workers), through the parent (peak, p50/p99 at half of it, CPU per request), blind RSA
# (node:crypto against @cloudflare/blindrsa-ts, the app's blind + finalize), the token issuer
# through HTTP on both engines, and the DIP service end to end (app → service → parent → enclave:
# assigns and refreshes per second against the in-process refresh, p50/p99 at half the peak
# rate, the service's CPU per request; both engines).
bench: deps
	npx tsx scripts/bench-core.ts
	npx tsx scripts/bench-parent.ts
	npx tsx scripts/bench-blind-rsa.ts
	npx tsx scripts/bench-issuer.ts 1000
	npx tsx scripts/bench-service.ts

# One readable transcript of a Dedicated IP's life (development data): uses `make dev`'s stack on
# 127.0.0.1:8080 when it answers, else starts a throwaway one.
.PHONY: demo
demo: deps
	npx tsx scripts/demo.ts

clean:
	rm -rf coverage .dev node_modules/.installed

# ---- Nitro: bundle, EIF, PCR manifest and the operator's targets (issues 5 and 6) -------------
# Owned by the Nitro/reproducible-build work; docs/operations.md and docs/auditing.md explain them.
# Docker targets need a Docker engine with buildx (BuildKit >= 0.13 for rewrite-timestamp);
# run-enclave needs a Nitro host with nitro-cli. `make -n TARGET` prints what each would run.
COMMIT ?= $(shell git rev-parse HEAD)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct)
PLATFORM ?= linux/amd64
IMAGE ?= dip-enclave:$(COMMIT)
BUILDER_IMAGE ?= dip-eif-builder:$(COMMIT)
EIF_DIR ?= build/eif
EIF ?= $(EIF_DIR)/dip-enclave.eif
ENCLAVE_NAME ?= dip-enclave
ENCLAVE_CPUS ?= 2
ENCLAVE_MEMORY_MIB ?= 1024
ENCLAVE_CID ?= 16
PARENT_URL ?= http://127.0.0.1:8080
# AWS's blobs (bzImage, cmdline, init, nsm.ko; aws-nitro-enclaves-cli-devel installs them in
# /usr/share/nitro_enclaves/blobs): given, the Docker-free build also measures PCR0 and PCR1.
BLOBS ?=
NATIVE_FLAGS = $(if $(BLOBS),--blobs $(BLOBS))
BUILD_EVIDENCE = --measurements $(EIF_DIR)/measurements.json --eif $(EIF) --builder-info $(EIF_DIR)/builder-info.txt --image-bundle $(EIF_DIR)/image-bundle.mjs

.PHONY: bundle parent-bundle check-pins pin-images eif eif-native describe-eif pcr-manifest verify-pcrs verify-pcrs-docker run-enclave terminate-enclave enclave-status health

# The deterministic esbuild bundle of the enclave (dist/enclave/enclave.mjs); prints its SHA-384.
bundle: deps
	npx tsx scripts/build-bundle.ts

# The parent proxy as one plain-Node file for the EC2 host (deploy/dip-parent.service runs it).
parent-bundle: deps
	npx tsx scripts/build-bundle.ts --parent

# Refuses to build while any base image or builder input is still marked PIN-ME.
check-pins:
	@if grep -n '^ARG .*PIN-ME' Dockerfile.enclave deploy/eif-builder.Dockerfile; then \
	  echo "check-pins: the inputs above are not pinned; run 'make pin-images' on a host with registry access" >&2; exit 1; fi

# Prints the digest of every base image tag, to be written into the ARG lines as @sha256:...
# Fails, naming the image, when docker cannot print a digest (no registry access, no buildx).
pin-images:
	@refs=$$(sed -n 's/^ARG [A-Z0-9_]*_IMAGE=\([^@]*\)@.*/\1/p' Dockerfile.enclave deploy/eif-builder.Dockerfile); \
	if [ -z "$$refs" ]; then echo "pin-images: no ARG *_IMAGE=ref@digest lines found" >&2; exit 1; fi; \
	for ref in $$refs; do \
	  digest=$$(docker buildx imagetools inspect "$$ref" --format '{{json .Manifest.Digest}}' | tr -d '"') || digest=""; \
	  if ! [[ "$$digest" =~ ^sha256:[0-9a-f]{64}$$ ]]; then echo "pin-images: no digest for $$ref (registry access? docker buildx?)" >&2; exit 1; fi; \
	  echo "$$ref@$$digest"; done

# Image (buildx, SOURCE_DATE_EPOCH from the commit, rewrite-timestamp) → EIF (pinned nitro-cli in a
# container) → Measurements JSON, builder info, the bundle found in the image, and our own describe.
eif: check-pins
	mkdir -p $(EIF_DIR)
	docker buildx build --file Dockerfile.enclave --platform $(PLATFORM) --provenance=false --sbom=false --build-arg SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) --output type=docker,name=$(IMAGE),rewrite-timestamp=true .
	docker buildx build --file deploy/eif-builder.Dockerfile --provenance=false --sbom=false --build-arg SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) --output type=docker,name=$(BUILDER_IMAGE) deploy
	docker run --rm -v /var/run/docker.sock:/var/run/docker.sock -v $(abspath $(EIF_DIR)):/out $(BUILDER_IMAGE) build-enclave --docker-uri $(IMAGE) --output-file /out/dip-enclave.eif > $(EIF_DIR)/measurements.json
	docker run --rm --entrypoint sh $(BUILDER_IMAGE) -c 'nitro-cli --version; sha384sum /usr/share/nitro_enclaves/blobs/*' > $(EIF_DIR)/builder-info.txt
	cid=$$(docker create $(IMAGE)) && docker cp $$cid:/app/enclave/enclave.mjs $(EIF_DIR)/image-bundle.mjs; docker rm $$cid >/dev/null
	npx tsx scripts/eif-cli.ts describe $(EIF) > $(EIF_DIR)/describe.json
	cat $(EIF_DIR)/measurements.json

# Without Docker (issue 14): the bundle, then the root file system from scripts/eif-pins.json's
# pinned inputs (cached in .cache/eif-inputs, hash-checked on every use) → customer ramdisk → PCR2;
# with BLOBS=DIR also the bootstrap ramdisk, $(EIF), PCR0 and PCR1. It replaces a Docker-built
# EIF in $(EIF_DIR), so that Docker build's measurements are removed with it.
eif-native: deps
	rm -f $(EIF_DIR)/measurements.json $(EIF_DIR)/describe.json
	npx tsx scripts/eif-cli.ts build --out $(EIF_DIR) $(NATIVE_FLAGS)

# PCR0/1/2 (and PCR8) of an EIF without nitro-cli: make describe-eif EIF=path/to/file.eif
describe-eif: deps
	@test -f $(EIF) || { echo "describe-eif: no EIF at $(EIF): run 'make eif' first or pass EIF=path/to/file.eif" >&2; exit 1; }
	npx tsx scripts/eif-cli.ts describe $(EIF)

# Writes pcr-manifest.json for HEAD: PCR2 from the Docker-free build of HEAD (PCR0 and PCR1 too
# with BLOBS=DIR, else pending), plus the Docker build's measurements when `make eif` left them.
pcr-manifest: deps
	npx tsx scripts/pcr-manifest.ts write $(NATIVE_FLAGS) $(if $(wildcard $(EIF_DIR)/measurements.json),$(BUILD_EVIDENCE))

# No Docker: rebuilds the manifest's commit and compares with pcr-manifest.json field by field,
# PCR2 included (exit 1 on a difference). With BLOBS=DIR it also prints PCR0 and PCR1.
verify-pcrs: deps
	npx tsx scripts/pcr-manifest.ts verify $(NATIVE_FLAGS)

# The same, plus the Docker + nitro-cli build's measurements (needs a Docker host).
verify-pcrs-docker: deps eif
	npx tsx scripts/pcr-manifest.ts verify $(NATIVE_FLAGS) $(BUILD_EVIDENCE)

run-enclave:
	nitro-cli run-enclave --enclave-name $(ENCLAVE_NAME) --eif-path $(EIF) --cpu-count $(ENCLAVE_CPUS) --memory $(ENCLAVE_MEMORY_MIB) --enclave-cid $(ENCLAVE_CID)

terminate-enclave:
	nitro-cli terminate-enclave --enclave-name $(ENCLAVE_NAME)

enclave-status:
	nitro-cli describe-enclaves

# 200 only when the enclave answers `health` through the parent (SPEC §6 /readyz).
health:
	curl -fsS $(PARENT_URL)/healthz && curl -fsS $(PARENT_URL)/readyz
