#!/usr/bin/env bash
# The test command (README, .ci/run): installs what it needs, builds, then
# runs the unit tests and the end-to-end tests against real Pebble and lego,
# then the fault suite at its small size (test/faults/: daemon and CA killed,
# Redis restarted, a flaky network, a broken disk; needs root for a tmpfs),
# then the benchmark at tiny sizes so it cannot rot (it times nothing here).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh lego redis-server kubectl
# Tests, harness and benchmarks are type-checked too (the build covers src/ only).
npx tsc -p tsconfig.check.json
node --import tsx --test --test-concurrency=1 test/unit/*.test.ts test/e2e/*.test.ts
# dist/ was built by install-deps.sh above; `npm run test:faults` builds first.
node --import tsx test/faults/run.ts
BENCH_TINY=1 bash scripts/bench.sh
