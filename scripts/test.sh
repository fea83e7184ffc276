#!/usr/bin/env bash
# The README's second command: set up this host and run every test tier (lint and type check
# first). The tiers run one after the other: e2e boots VMs under software emulation on a small
# machine and must not compete with the namespace tests for the CPU, and the packaging tier
# installs the .deb into this host, so nothing else may run beside it. Extra arguments go to every
# vitest run, e.g. `scripts/test.sh test/unit/addressing`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
npm run --silent lint
npm run --silent typecheck
status=0
for tier in unit integration packaging e2e; do
  echo "== $tier tests"
  npx vitest run --project "$tier" --passWithNoTests "$@" || status=1
done
exit "$status"
