#!/usr/bin/env bash
# The README's second command: set up this host and run every test tier (lint and type check
# first). Extra arguments go to vitest, e.g. `scripts/test.sh --project unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
npm run --silent lint
npm run --silent typecheck
exec npx vitest run "$@"
