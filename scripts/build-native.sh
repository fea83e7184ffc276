#!/usr/bin/env bash
# Builds native/ (the libvirt and libnftables addons) with npm's bundled node-gyp (on PATH under `npm run`).
# Uses the running Node's own headers (Debian/NodeSource packages ship them under
# <prefix>/include/node) so no download from nodejs.org is needed. Incremental: configures once,
# then `make` rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(dirname "$(dirname "$(command -v node)")")
args=()
if [ -f "$prefix/include/node/node_api.h" ]; then
  args+=(--nodedir="$prefix")
fi
if [ ! -f native/build/Makefile ] || [ native/binding.gyp -nt native/build/Makefile ]; then
  node-gyp configure --directory native "${args[@]}" --loglevel=warn
fi
# make lists every step on stdout; errors and warnings stay on stderr.
node-gyp build --directory native "${args[@]}" --loglevel=warn >/dev/null
