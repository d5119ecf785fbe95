#!/usr/bin/env bash
# npm run demo: installs Pebble, builds acmed, runs the local demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
node --import tsx scripts/demo.ts
