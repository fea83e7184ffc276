#!/usr/bin/env bash
# Prepares a checkout to run: host packages, npm dependencies, the build (TypeScript and, once
# present, the native/ libvirt addon). Safe to run again; each step skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "bootstrap: Node.js 20 and npm are required (Debian 12's own nodejs is 18; install Node.js 20 first)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "bootstrap: Node.js $(node --version) is too old; v6agent needs Node.js 20 or later" >&2
  exit 1
fi

bash scripts/setup-host.sh

# npm ci reinstalls from the lock file exactly; skip it when node_modules already matches.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.v6agent-lock; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.v6agent-lock
fi

npm run --silent build
