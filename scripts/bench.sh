#!/usr/bin/env bash
# npm run bench: installs the peers (certbot, lego, nginx, wrk) and Pebble, builds, runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh certbot lego nginx wrk
node --import tsx bench/run.ts
