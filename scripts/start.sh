#!/usr/bin/env bash
# The one run command (README): installs what is needed, builds, and brings the whole pipeline up locally — every
# service as its own process, plus nats-server and redis-server when NATS_URL / REDIS_URL are not given — runs a
# demo that shows tasks flowing, and keeps the stack up until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
pnpm -s build
exec node scripts/stack.mjs
