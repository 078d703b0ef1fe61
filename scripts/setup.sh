#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine with Node 20 (run as root, or with sudo available):
# the Debian packages nats-server and redis-server, pnpm at the version pinned in package.json, and the workspace's
# dependencies from the lockfile. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "Node.js 20 or newer is required (found: $(node --version 2>/dev/null || echo none))." >&2
  exit 1
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# apt-get install, refreshing the package lists once if they are missing or stale (a fresh machine may have none).
apt_updated=""
apt_install() {
  if [ -z "$(ls /var/lib/apt/lists/*_Packages 2>/dev/null | head -1)" ]; then
    $SUDO apt-get update -qq && apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 && return 0
  [ -n "$apt_updated" ] && return 1
  $SUDO apt-get update -qq && apt_updated=1
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have nats-server || missing+=(nats-server)
have redis-server || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt_install "${missing[@]}"
fi

# Tools only the tests need: `bash scripts/setup.sh test` (scripts/test.sh does this).
if [ "${1:-}" = "test" ]; then
  # The web console's browser tests drive Debian's chromium (playwright-core downloads no browser of its own).
  if ! command -v chromium >/dev/null 2>&1; then
    log "installing Debian package: chromium (for the web console tests)"
    apt_install chromium || log "could not install chromium: the web console tests will be skipped"
  fi

  # openssl: the Redis TLS tests make a throwaway CA and server certificate with it (pkg/testkit/src/tls.ts).
  if ! command -v openssl >/dev/null 2>&1; then
    log "installing Debian package: openssl (for the Redis TLS tests)"
    apt_install openssl
  fi

  # valgrind: the test of the benchmark's `--drain --instructions` (callgrind) runs a process under it.
  if ! command -v valgrind >/dev/null 2>&1; then
    log "installing Debian package: valgrind (for the benchmark's instruction counting test)"
    apt_install valgrind || log "could not install valgrind: the instruction counting test will be skipped"
  fi

  # promtool (for the Prometheus config checks in the tests) comes from Debian's prometheus package; installing that
  # package would also start a Prometheus daemon, so only its promtool binary is extracted into .tools/.
  if ! command -v promtool >/dev/null 2>&1 && [ ! -x .tools/prometheus/usr/bin/promtool ]; then
    log "extracting promtool from Debian's prometheus package into .tools/"
    [ -n "$(ls /var/lib/apt/lists/*_Packages 2>/dev/null | head -1)" ] || { $SUDO apt-get update -qq && apt_updated=1; }
    tmp=$(mktemp -d)
    if (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1) \
      || { [ -z "$apt_updated" ] && $SUDO apt-get update -qq && apt_updated=1 && (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); }; then
      mkdir -p .tools/prometheus
      dpkg-deb -x "$tmp"/prometheus_*.deb .tools/prometheus
    else
      log "could not download Debian's prometheus package: promtool checks will be skipped"
    fi
    rm -rf "$tmp"
  fi
fi

# corepack cannot fetch pnpm on every machine (signature errors), so install the pinned version with npm.
pnpm_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  log "installing pnpm@$pnpm_version"
  npm install -g --silent "pnpm@$pnpm_version" >/dev/null
fi

log "installing dependencies (pnpm install --frozen-lockfile)"
pnpm install --frozen-lockfile --reporter=silent
