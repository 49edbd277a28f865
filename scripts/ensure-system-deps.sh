#!/usr/bin/env bash
# Installs the Debian packages that tests and the local stack need, only when missing.
# socat: the VSOCK/Unix bridge of the Nitro runtime (issue 5), exercised here with its TCP variant.
set -euo pipefail
missing=()
command -v socat >/dev/null 2>&1 || missing+=(socat)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "ensure-system-deps: need ${missing[*]} but cannot install without root" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "ensure-system-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
