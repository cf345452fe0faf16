#!/usr/bin/env bash
# The whole test suite: install what is missing, typecheck, lint, then unit and end-to-end tests
# (real swtpm, redis-server, tpm2-tools, skopeo). Prints a closing "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] typecheck" >&2
pnpm run --silent typecheck
echo "[test] lint" >&2
pnpm run --silent lint
echo "[test] vitest" >&2
report=$(mktemp)
status=0
pnpm exec vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "$report" || true
rm -f "$report"
exit "$status"
