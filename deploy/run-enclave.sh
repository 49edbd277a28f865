#!/usr/bin/env bash
# Runs the enclave for dip-enclave.service and stays in the foreground while it runs, so that
# systemd restarts it (terminate + run) when it is gone. The enclave exits, and AWS's init
# reboots it away, whenever its Node process or its socat bridge dies (issue 5): it never
# limps on half-working. Settings come from /etc/dip/enclave.env (deploy/enclave.env).
set -euo pipefail
: "${EIF_PATH:?}" "${ENCLAVE_NAME:?}" "${ENCLAVE_CPUS:?}" "${ENCLAVE_MEMORY_MIB:?}" "${ENCLAVE_CID:?}"
NITRO_CLI="${NITRO_CLI:-nitro-cli}"
POLL_SECONDS="${POLL_SECONDS:-10}"

"$NITRO_CLI" terminate-enclave --enclave-name "$ENCLAVE_NAME" >/dev/null 2>&1 || true
# No --debug-mode: a debug enclave has all-zero PCRs (clients refuse it) and a readable console.
"$NITRO_CLI" run-enclave \
  --enclave-name "$ENCLAVE_NAME" \
  --eif-path "$EIF_PATH" \
  --cpu-count "$ENCLAVE_CPUS" \
  --memory "$ENCLAVE_MEMORY_MIB" \
  --enclave-cid "$ENCLAVE_CID"

running() {
  "$NITRO_CLI" describe-enclaves | ENCLAVE_NAME="$ENCLAVE_NAME" node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const up = JSON.parse(s).some((e) => e.EnclaveName === process.env.ENCLAVE_NAME && e.State === "RUNNING");
      process.exit(up ? 0 : 1);
    });'
}

while running; do sleep "$POLL_SECONDS"; done
echo "run-enclave: enclave ${ENCLAVE_NAME} is no longer running" >&2
exit 1
