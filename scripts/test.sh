#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what is needed, builds, checks generated code, lints,
# type-checks and runs every test (unit and integration, against real nats-server and redis-server processes that
# the tests start on free ports). Ends with one summary line: "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh test
step() { printf '\033[1;34m[test]\033[0m %s\n' "$*"; }

step "build";              pnpm -s build
step "generated code";     pnpm -s gen:check
step "lint";               pnpm -s lint
step "typecheck";          pnpm -s typecheck

step "tests"
if [ -z "${PROMTOOL:-}" ] && ! command -v promtool >/dev/null 2>&1 && [ -x .tools/prometheus/usr/bin/promtool ]; then
  export PROMTOOL="$PWD/.tools/prometheus/usr/bin/promtool"
fi
mkdir -p .tmp
status=0
pnpm -s exec vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest-report.json "$@" || status=$?
node scripts/test-summary.mjs .tmp/vitest-report.json || status=1
exit $status
