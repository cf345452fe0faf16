#!/usr/bin/env bash
# Install what Keyhold needs on a Debian 12 machine with Node 20: Debian packages (swtpm, tpm2-tss,
# tpm2-tools, redis, skopeo, umoci), pnpm, the node modules, and the build. Safe to run twice:
# each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

APT_PACKAGES=(swtpm swtpm-tools tpm2-tools libtss2-dev redis-server redis-tools skopeo umoci openssl ca-certificates chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { log "need root (or sudo) to install: ${missing[*]}"; exit 1; }
    SUDO="sudo"
  fi
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packaged redis-server service is not used (tests and the demo start their own on random ports).

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then log "Node.js 20 or newer is required (found $(node --version 2>/dev/null || echo none))"; exit 1; fi

PNPM_VERSION=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if ! command -v pnpm >/dev/null || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  log "installing pnpm $PNPM_VERSION"
  npm install -g "pnpm@$PNPM_VERSION" >/dev/null 2>&1 || { log "npm install -g pnpm failed"; exit 1; }
fi

if [ ! -f node_modules/.modules.yaml ] || [ pnpm-lock.yaml -nt node_modules/.modules.yaml ]; then
  log "installing node modules"
  pnpm install --frozen-lockfile --reporter=silent
fi

log "building"
pnpm run --silent build
