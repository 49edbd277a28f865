#!/usr/bin/env bash
# Installs the Debian packages that tests and the local stack need, only when missing.
# socat: the VSOCK/Unix bridge of the Nitro runtime (issue 5), exercised here with its TCP variant.
# cpio: Debian's own reader, which the tests use to list and unpack the ramdisks `dip-eif build`
# writes (issue 14). `dip-eif build` fetches its pinned Debian packages with apt-get download,
# which needs package lists: fetched here once when there are none.
set -euo pipefail
missing=()
command -v socat >/dev/null 2>&1 || missing+=(socat)
command -v cpio >/dev/null 2>&1 || missing+=(cpio)
lists_empty=no
if command -v apt-get >/dev/null 2>&1 && ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then lists_empty=yes; fi
[ ${#missing[@]} -eq 0 ] && [ "$lists_empty" = no ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "ensure-system-deps: need ${missing[*]:-apt package lists} but cannot install without root" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "ensure-system-deps: ${missing[*]:+installing ${missing[*]}; }updating apt package lists" >&2
$SUDO apt-get update -qq >/dev/null
[ ${#missing[@]} -eq 0 ] && exit 0
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
