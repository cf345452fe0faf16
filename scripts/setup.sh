#!/usr/bin/env bash
# Install what Keyhold needs on a Debian 12 machine with Node 20: Debian packages (swtpm, tpm2-tss,
# tpm2-tools, redis, skopeo, umoci), pnpm, the node modules, and the build. Safe to run twice:
# each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

APT_PACKAGES=(swtpm swtpm-tools tpm2-tools libtss2-dev redis-server redis-tools skopeo umoci openssl ca-certificates chromium curl)
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

# Put keyhold, keyhold-kbs and keyhold-agent on PATH: symbolic links to this checkout's built bins,
# in /usr/local/bin when it is writable (root), else ~/.local/bin (KEYHOLD_BIN_DIR overrides;
# KEYHOLD_NO_LINKS=1 skips). Re-running repoints them; a file that is not such a link is left alone.
link_bins() {
  local dir="${KEYHOLD_BIN_DIR:-}"
  if [ -z "$dir" ]; then
    if [ -w /usr/local/bin ]; then dir=/usr/local/bin; else dir="$HOME/.local/bin"; fi
  fi
  mkdir -p "$dir"
  local name target
  for pair in keyhold:packages/cli/bin/keyhold.js keyhold-kbs:packages/kbs/bin/keyhold-kbs.js keyhold-agent:packages/attestation-agent/bin/keyhold-agent.js; do
    name=${pair%%:*}
    target="$PWD/${pair#*:}"
    if [ -e "$dir/$name" ] && [ ! -L "$dir/$name" ]; then
      log "not linking $dir/$name: a file that is not a link is already there"
      continue
    fi
    ln -sfn "$target" "$dir/$name"
  done
  log "commands on PATH: keyhold, keyhold-kbs, keyhold-agent -> $dir"
  case ":$PATH:" in
    *":$dir:"*) ;;
    *) log "add $dir to PATH: export PATH=\"$dir:\$PATH\"" ;;
  esac
}
if [ "${KEYHOLD_NO_LINKS:-}" != 1 ]; then link_bins; fi
