#!/usr/bin/env bash
# npm run bench: installs the peers (certbot, lego, nginx, wrk), Pebble and redis-server, builds, runs (bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh certbot lego nginx wrk redis-server
node --import tsx bench/run.ts
