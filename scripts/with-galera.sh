#!/usr/bin/env bash
# Runs a command against a fresh 3-node Galera cluster (scripts/galera-cluster.sh), then stops the cluster whatever
# happened (a failed start included). The command gets JOBWATCH_TEST_GALERA_NODES=mysql://root@127.0.0.1:33061/,...
# `npm run test:galera` and `npm run bench:galera` use it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || {
  echo "usage: $0 command [args...]" >&2
  exit 2
}
cluster=scripts/galera-cluster.sh
trap '"$cluster" stop' EXIT
"$cluster" start
nodes=""
for n in 1 2 3; do nodes+="${nodes:+,}mysql://root@127.0.0.1:$((${JOBWATCH_GALERA_MYSQL_BASE:-33060} + n))/"; done
JOBWATCH_TEST_GALERA_NODES="$nodes" "$@"
