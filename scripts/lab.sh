#!/usr/bin/env bash
# The README's first command: set up this host, build, and run the main job, `v6agent lab`:
# a management server, an agent daemon, a router and guests on this one machine, the seed's
# sequence played for real, attacks included (docs/lab.md). Extra arguments go to `v6agent lab`
# (e.g. --hypervisor xenserver, --backend xtables, --guests 3, --keep, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "lab.sh: run as root (the lab builds namespaces, bridges, VMs and firewall rules)" >&2
  exit 1
fi
bash scripts/bootstrap.sh
exec node dist/src/cli.js lab "$@"
