#!/usr/bin/env bash
# npm run test:galera: starts a 3-node Galera cluster (scripts/galera-cluster.sh), runs test/galera against it, and
# stops it whatever happened (a failed start included). Uses the cluster's default ports (33061-33063 ...).
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=scripts/galera-cluster.sh
trap '"$cluster" stop' EXIT
"$cluster" start
nodes=""
for n in 1 2 3; do nodes+="${nodes:+,}mysql://root@127.0.0.1:$((${JOBWATCH_GALERA_MYSQL_BASE:-33060} + n))/"; done
JOBWATCH_TEST_GALERA_NODES="$nodes" node --import tsx --test --test-concurrency=1 test/galera/*.test.ts
