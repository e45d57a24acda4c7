#!/usr/bin/env bash
# Runs a command against a fresh 3-node Galera cluster (scripts/galera-cluster.sh), then stops the cluster whatever
# happened (a failed start included). The command gets JOBWATCH_TEST_GALERA_NODES=mysql://root@127.0.0.1:33061/,...
# `npm run test:galera`, `npm run test:guarantees` and `npm run bench:galera` use it. Inside another with-galera run
# (JOBWATCH_TEST_GALERA_NODES already set) it runs the command on that cluster: CI starts and stops one cluster for both
# suites (`scripts/with-galera.sh sh -c 'npm run test:galera && npm run test:guarantees'`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || {
  echo "usage: $0 command [args...]" >&2
  exit 2
}
if [ -n "${JOBWATCH_TEST_GALERA_NODES:-}" ]; then
  exec "$@"
fi
cluster=scripts/galera-cluster.sh
trap '"$cluster" stop' EXIT
"$cluster" start
nodes=""
for n in 1 2 3; do nodes+="${nodes:+,}mysql://root@127.0.0.1:$((${JOBWATCH_GALERA_MYSQL_BASE:-33060} + n))/"; done
JOBWATCH_TEST_GALERA_NODES="$nodes" "$@"
