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

# Prints running, stopped or unknown. Only a parsed answer without our enclave is "stopped": a
# nitro-cli that fails or prints something unparsable says nothing about the enclave, and exiting
# on it would make systemd terminate and replace a healthy enclave (new boot key, lost DRT keys).
enclave_state() {
  local out
  if ! out=$("$NITRO_CLI" describe-enclaves 2>/dev/null); then echo unknown; return; fi
  printf '%s' "$out" | ENCLAVE_NAME="$ENCLAVE_NAME" node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      let list;
      try { list = JSON.parse(s); } catch { list = null; }
      if (!Array.isArray(list)) { console.log("unknown"); return; }
      const up = list.some((e) => e && e.EnclaveName === process.env.ENCLAVE_NAME && e.State === "RUNNING");
      console.log(up ? "running" : "stopped");
    });' || echo unknown
}

warned=no
while :; do
  state=$(enclave_state)
  case "$state" in
    running) warned=no ;;
    stopped) break ;;
    *)
      # Said once per spell of failures, so the journal is not flooded while nitro-cli is broken.
      if [ "$warned" = no ]; then
        warned=yes
        echo "run-enclave: nitro-cli describe-enclaves failed or was unreadable; keeping enclave ${ENCLAVE_NAME} and polling" >&2
      fi ;;
  esac
  sleep "$POLL_SECONDS"
done
echo "run-enclave: enclave ${ENCLAVE_NAME} is no longer running" >&2
exit 1
