#!/bin/sh
# /usr/bin/v6agent of the .deb and .rpm: the agent on the Node.js runtime the package bundles
# (packaging/node-runtime.env), never on whatever `node` the host has or lacks.
exec /usr/lib/v6agent/node/bin/node /usr/lib/v6agent/dist/src/cli.js "$@"
