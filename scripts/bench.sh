#!/usr/bin/env bash
# npm run bench: installs the peers (certbot, lego) and Pebble, builds, runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh certbot lego
node --import tsx bench/run.ts
