#!/usr/bin/env bash
# Installs what the RabbitMQ interop, reliability and benchmark tests of
# bus/amqp run under Node: OIH's own event-bus library, exactly the version
# deployments use, and amqplib (its dependency, also used directly by the
# plain consumer script). Prints the node_modules folder to point
# HERALD_TEST_OIH_NODE_MODULES at:
#
#   export HERALD_TEST_OIH_NODE_MODULES=$(.ci/npm-interop.sh)
#   export HERALD_TEST_OIH_NODE_MODULES=$(.ci/npm-interop.sh /tmp/oih)   # a folder of your choice
set -euo pipefail

dir=${1:-$(mktemp -d "${TMPDIR:-/tmp}/herald-oih.XXXXXX")}
mkdir -p "$dir"
npm install --silent --no-audit --no-fund --prefix "$dir" \
  @openintegrationhub/event-bus@1.3.0 amqplib@0.8.0 >&2
# The tests check this version; fail here rather than there.
node -e 'const v = require(process.argv[1]).version; if (v !== "1.3.0") { console.error("event-bus " + v + ", want 1.3.0"); process.exit(1) }' \
  "$dir/node_modules/@openintegrationhub/event-bus/package.json"
echo "$dir/node_modules"
