#!/usr/bin/env bash
# The test command (README, .ci/run): installs what it needs, builds, then
# runs the unit tests and the end-to-end tests against real Pebble and lego,
# then the fault suite at its small size (test/faults/: daemon and CA killed,
# Redis restarted, a flaky network, a broken disk; needs root for a tmpfs),
# then the benchmark at tiny sizes so it cannot rot (it times nothing here).
set -euo pipefail
cd "$(dirname "$0")/.."
# prometheus: promtool (metrics lint, alert rule tests) and a real server that scrapes acmed;
# redis-sentinel, redis-tools (redis-cli --cluster) and etcd-server: the storage backends' real servers;
# bind9 (+ tsig-keygen, dig, nsupdate): the DNS server dns-01 updates and Pebble resolves through;
# kubectl: the real client of the Kubernetes stand-in (Debian's kubernetes-client only where none is on PATH).
bash scripts/install-deps.sh lego redis-server redis-sentinel redis-tools etcd-server prometheus bind9 bind9-utils bind9-dnsutils kubectl
# Tests, harness and benchmarks are type-checked too (the build covers src/ only).
npx tsc -p tsconfig.check.json
node --import tsx --test --test-concurrency=1 test/unit/*.test.ts test/e2e/*.test.ts
# dist/ was built by install-deps.sh above; `npm run test:faults` builds first.
node --import tsx test/faults/run.ts
BENCH_TINY=1 bash scripts/bench.sh
