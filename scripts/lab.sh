#!/usr/bin/env bash
# The README's first command: set up this host and run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec node dist/src/cli.js --help
