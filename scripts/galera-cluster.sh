#!/usr/bin/env bash
# A 3-node MariaDB Galera cluster on 127.0.0.1 for tests and measurements: start|stop|kill-node N|restart-node N|pause-node N|resume-node N|status|positions|recover.
#
# Everything lives under one folder (default ${TMPDIR:-/tmp}/jobwatch-galera): each node's my.cnf, data, socket,
# pid file and error log. `stop` ends exactly the mariadbd processes this script started (by the pids it
# recorded) and removes the folder. Ports (override with the variables below):
#   node N: mysql 33060+N, gcomm 24670+N, IST 24680+N, SST (rsync) 24690+N.
# Clients connect as root@127.0.0.1 without a password, e.g. mysql://root@127.0.0.1:33061/jobwatch.
#
# Why it is set up like this (each one learned the hard way):
# - mariadbd runs as the `mysql` user (--user=mysql, data folders chowned): run as root, the rsync state
#   transfer runs as `nobody` and fails.
# - each node has its own --defaults-file, or it reads the system my.cnf (port 3306, /var/lib/mysql).
# - root@localhost matches the Unix socket only, so root@'127.0.0.1' is created for TCP clients.
# - Galera needs binlog_format=ROW and innodb_autoinc_lock_mode=2 (interleaved auto-increment).
# - after kill -9 a node restarts with `--wsrep-recover` and then `--wsrep-start-position=<uuid:seqno>`,
#   so it catches up by IST (incremental) instead of a full copy that would lock its donor.
# - the gcomm, IST and SST ports are below Linux's ephemeral range (32768-60999): in it (they were 4567x-4569x), an
#   outgoing connection of any process could hold one as its local port when a killed node restarted, and its rsync
#   daemon (or IST listener) could not bind it: rsync exits 10, and the rejoin fails with "SST request callback
#   failed". A restart also waits for the node's ports to be free and clears what a killed node's SST left behind.
# - short EVS timeouts, so a killed node is evicted (and the others commit again) within ~3 s, not 15 s.
# - every commit is flushed before it is acknowledged (innodb_flush_log_at_trx_commit=1, and sync_binlog=1 should
#   the binlog be turned on): with 2, a node keeps its last second of commits only in the OS's cache, and nodes
#   crashing in quick succession (power, a kernel panic, a VM host) lose transactions the cluster acknowledged
#   (Jepsen's 2026 Galera analysis). The README's Galera section says the same for production.
set -euo pipefail

DIR="${JOBWATCH_GALERA_DIR:-${TMPDIR:-/tmp}/jobwatch-galera}"
MYSQL_BASE="${JOBWATCH_GALERA_MYSQL_BASE:-33060}"
GCOMM_BASE="${JOBWATCH_GALERA_GCOMM_BASE:-24670}"
IST_BASE="${JOBWATCH_GALERA_IST_BASE:-24680}"
SST_BASE="${JOBWATCH_GALERA_SST_BASE:-24690}"
NODES=3
PROVIDER=/usr/lib/galera/libgalera_smm.so
MARIADBD=/usr/sbin/mariadbd

usage() {
  echo "usage: $0 start|stop|kill-node N|restart-node N|pause-node N|resume-node N|status|positions|recover" >&2
  exit 2
}

log() { echo "galera-cluster: $*" >&2; }

# Installs the packages the cluster needs when they are missing (CI machines may lack them).
ensure_packages() {
  local missing=()
  [ -x "$MARIADBD" ] || missing+=(mariadb-server)
  [ -f "$PROVIDER" ] || missing+=(galera-4)
  command -v rsync >/dev/null || missing+=(rsync)
  command -v mariadb >/dev/null || missing+=(mariadb-client)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
  fi
}

node_dir() { echo "$DIR/node$1"; }
mysql_port() { echo $((MYSQL_BASE + $1)); }

# The pid this script recorded for node N, if that process is still a mariadbd.
node_pid() {
  local file pid
  file="$(node_dir "$1")/started.pid"
  [ -f "$file" ] || return 1
  pid="$(cat "$file")"
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && grep -qx 'mariadbd' "/proc/$pid/comm" || return 1
  echo "$pid"
}

# Whether the process launched for node N is still alive, mariadbd or not yet: right after `launch` the recorded
# pid can still be the forked shell or setsid before it execs mariadbd (seen under load as "exited while
# starting" with an empty log).
launched_alive() {
  local file pid state
  file="$(node_dir "$1")/started.pid"
  [ -f "$file" ] || return 1
  pid="$(cat "$file")"
  [ -n "$pid" ] && state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != "Z" ]
}

# A query on node N through its socket (root@localhost), tab-separated, no headers.
node_sql() {
  mariadb --defaults-file="$(node_dir "$1")/my.cnf" -N -B -e "$2" 2>/dev/null
}

write_config() {
  local n=$1 d cluster=""
  d="$(node_dir "$n")"
  for i in $(seq 1 $NODES); do cluster+="${cluster:+,}127.0.0.1:$((GCOMM_BASE + i))"; done
  mkdir -p "$d/data" "$d/tmp"
  cat >"$d/my.cnf" <<EOF
[client]
socket = $d/mysqld.sock
user = root

[mysqld]
user = mysql
datadir = $d/data
tmpdir = $d/tmp
socket = $d/mysqld.sock
pid-file = $d/mysqld.pid
log-error = $d/error.log
bind-address = 127.0.0.1
port = $(mysql_port "$n")
skip-name-resolve
performance_schema = OFF
max_connections = 300
innodb_buffer_pool_size = 64M
innodb_log_file_size = 32M
# Flushed before acknowledged (see the header): nodes that crash together must not lose acknowledged commits.
innodb_flush_log_at_trx_commit = 1
sync_binlog = 1
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
wsrep_on = ON
wsrep_provider = $PROVIDER
wsrep_cluster_name = jobwatch-test
wsrep_cluster_address = gcomm://$cluster
wsrep_node_name = node$n
wsrep_node_address = 127.0.0.1
wsrep_sst_method = rsync
wsrep_sst_receive_address = 127.0.0.1:$((SST_BASE + n))
wsrep_slave_threads = 2
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:$((GCOMM_BASE + n));ist.recv_addr=127.0.0.1:$((IST_BASE + n));gcache.size=64M;evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S;evs.suspect_timeout=PT2S;evs.inactive_timeout=PT3S;evs.install_timeout=PT3S;evs.join_retrans_period=PT0.5S;pc.wait_prim_timeout=PT10S"
EOF
  chown -R mysql:mysql "$d"
}

# Starts mariadbd for node N in the background with extra arguments, and records its pid.
launch() {
  local n=$1 d
  shift
  d="$(node_dir "$n")"
  # setsid: the node outlives this script and is not hit by a Ctrl-C meant for the caller.
  setsid "$MARIADBD" --defaults-file="$d/my.cnf" "$@" </dev/null >>"$d/stdout.log" 2>&1 &
  echo $! >"$d/started.pid"
}

# Waits until node N answers and is Synced with the cluster (or fails after $2 seconds).
wait_synced() {
  local n=$1 limit=${2:-120} state
  for _ in $(seq 1 $((limit * 4))); do
    if ! launched_alive "$n"; then
      log "node$n exited while starting; the end of its log:"
      tail -n 30 "$(node_dir "$n")/error.log" >&2 || true
      return 1
    fi
    state="$(node_sql "$n" "select variable_value from information_schema.global_status where variable_name='wsrep_local_state_comment'" || true)"
    [ "$state" = "Synced" ] && return 0
    sleep 0.25
  done
  log "node$n not Synced after ${limit}s (state '${state:-no answer}'); the end of its log:"
  tail -n 30 "$(node_dir "$n")/error.log" >&2 || true
  return 1
}

any_running() {
  for n in $(seq 1 $NODES); do node_pid "$n" >/dev/null && return 0; done
  return 1
}

cmd_start() {
  ensure_packages
  if any_running; then
    log "a cluster from $DIR is already running; run '$0 stop' first"
    exit 1
  fi
  for n in $(seq 1 $NODES); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$(mysql_port "$n")") 2>/dev/null; then
      log "port $(mysql_port "$n") is already in use"
      exit 1
    fi
  done
  rm -rf "$DIR"
  mkdir -p "$DIR"
  chmod 755 "$DIR"
  for n in $(seq 1 $NODES); do write_config "$n"; done
  # Only the first node gets a fresh data folder; the others receive its copy by state transfer.
  mariadb-install-db --defaults-file="$(node_dir 1)/my.cnf" --user=mysql --skip-test-db --auth-root-authentication-method=socket \
    >"$(node_dir 1)/install.log" 2>&1 || {
    cat "$(node_dir 1)/install.log" >&2
    exit 1
  }
  launch 1 --wsrep-new-cluster
  wait_synced 1 60
  node_sql 1 "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
  for n in $(seq 2 $NODES); do launch "$n"; done
  for n in $(seq 2 $NODES); do wait_synced "$n" 120; done
  log "up: mysql://root@127.0.0.1:$(mysql_port 1) ... :$(mysql_port $NODES) (folder $DIR)"
}

cmd_stop() {
  local pids=() pid
  for n in $(seq 1 $NODES); do
    if pid="$(node_pid "$n")"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 120); do
      [ -e "/proc/$pid" ] || break
      sleep 0.25
    done
    if [ -e "/proc/$pid" ]; then
      log "mariadbd $pid did not stop within 30 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [ "${JOBWATCH_GALERA_KEEP:-}" = "1" ]; then
    log "stopped; kept $DIR"
  else
    rm -rf "$DIR"
    log "stopped"
  fi
}

cmd_kill_node() {
  local n=$1 pid
  pid="$(node_pid "$n")" || {
    log "node$n is not running"
    exit 1
  }
  kill -KILL "$pid"
  while [ -e "/proc/$pid" ]; do sleep 0.05; done
  log "node$n killed (pid $pid)"
}

# The position (uuid:seqno) a stopped node N's InnoDB reached, from `mariadbd --wsrep-recover`; empty if none.
recovered_position() {
  local d
  d="$(node_dir "$1")"
  rm -f "$d/recover.log"
  "$MARIADBD" --defaults-file="$d/my.cnf" --wsrep-recover --log-error="$d/recover.log" >/dev/null 2>&1 || true
  chown -R mysql:mysql "$d"
  sed -n 's/.*WSREP: Recovered position: *\([^ ]*\).*/\1/p' "$d/recover.log" | tail -n 1
}

# Each node's position, one line each: "N running <cluster status> uuid:seqno" (wsrep_last_committed) or
# "N stopped - uuid:seqno" (recovered).
cmd_positions() {
  local n
  for n in $(seq 1 $NODES); do
    if node_pid "$n" >/dev/null; then
      echo "$n running $(node_sql "$n" "select concat(max(if(variable_name='wsrep_cluster_status',variable_value,null)),' ',max(if(variable_name='wsrep_local_state_uuid',variable_value,null)),':',max(if(variable_name='wsrep_last_committed',variable_value,null))) from information_schema.global_status where variable_name in ('wsrep_cluster_status','wsrep_local_state_uuid','wsrep_last_committed')" || echo 'no-answer -')"
    else
      echo "$n stopped - $(recovered_position "$n")"
    fi
  done
}

# The sockets that would stop mariadbd or rsync binding local port $1: a listener, or a live connection using it as
# its local port. What a killed server leaves (FIN-WAIT, TIME-WAIT) does not: both bind with SO_REUSEADDR.
PORT_STATES=(state listening state established state syn-sent state syn-recv state close-wait)
port_users() {
  ss -Htanp "${PORT_STATES[@]}" "( sport = :$1 )" 2>/dev/null
}

# Before a stopped node N starts again: ends what an SST of its own left running (its script or rsync daemon, found
# by the pid files in its data folder), removes those pid files (a stale one naming a live process of any kind, its
# pid reused, makes the next SST script wait 30 s and fail), and waits (up to 30 s) until its four ports are free.
prepare_restart() {
  local n=$1 d file pid port busy
  d="$(node_dir "$n")"
  for file in "$d/data/rsync_sst.pid" "$d/data/wsrep_sst.pid"; do
    [ -f "$file" ] || continue
    pid="$(cat "$file" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -e "$d/"; then
      log "node$n: ending its SST's leftover process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-80))"
      kill -TERM "$pid" 2>/dev/null || true
      sleep 1
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
  done
  for _ in $(seq 1 60); do
    busy=""
    for port in "$(mysql_port "$n")" $((GCOMM_BASE + n)) $((IST_BASE + n)) $((SST_BASE + n)); do
      [ -n "$(port_users "$port")" ] && busy+="${busy:+ }$port"
    done
    [ -z "$busy" ] && return 0
    sleep 0.5
  done
  log "node$n: ports $busy still in use after 30 s:"
  for port in $busy; do port_users "$port" >&2 || true; done
  return 1
}

cmd_restart_node() {
  local n=$1 d position
  d="$(node_dir "$n")"
  [ -f "$d/my.cnf" ] || {
    log "no node$n in $DIR: start the cluster first"
    exit 1
  }
  if node_pid "$n" >/dev/null; then
    log "node$n is running"
    exit 1
  fi
  prepare_restart "$n"
  # The position the node's InnoDB reached, so it asks the cluster only for what it missed (IST).
  position="$(recovered_position "$n")"
  if [ -n "$position" ]; then
    launch "$n" --wsrep-start-position="$position"
  else
    log "node$n: no position recovered; it will take a full state transfer"
    launch "$n"
  fi
  wait_synced "$n" 120
  log "node$n Synced again${position:+ (from $position)}"
}

# Stops node N gracefully (SIGTERM), waiting up to 30 s before a kill -9.
stop_node() {
  local n=$1 pid
  pid="$(node_pid "$n")" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do
    [ -e "/proc/$pid" ] || return 0
    sleep 0.25
  done
  log "node$n ($pid) did not stop within 30 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  while [ -e "/proc/$pid" ]; do sleep 0.05; done
}

# After the cluster lost its majority (the running nodes non-Primary, the others killed), what the Galera manual
# says an operator does ("Resetting the Quorum", "Restarting the Cluster"): the node that committed the most
# (wsrep_last_committed of a running node, `--wsrep-recover` of a stopped one) becomes the primary component, and
# every other node rejoins it by IST. A running node that is behind is stopped first and rejoins like the others.
# Bootstrapping a node that is behind instead (pc.bootstrap=YES on the survivor) would make its shorter history the
# cluster's: the commits only the killed nodes hold, acknowledged to clients, are taken back, and those nodes later
# rejoin by IST from positions that no longer mean the same transactions.
cmd_recover() {
  local lines line n state _status position uuid="" seqno best=0 best_seqno=-1 best_position="" best_running=0
  lines="$(cmd_positions)"
  log "positions: $(awk '{ sub(/.*:/, "", $4); s = $2 == "running" ? $3 : "stopped"; printf "%snode%s %s %s", (NR > 1 ? ", " : ""), $1, s, $4 }' <<<"$lines")"
  while read -r n state _status position; do
    [ -n "$position" ] && [ "$position" != "-" ] || {
      log "node$n: no position ($state); recover it by hand"
      exit 1
    }
    seqno="${position##*:}"
    if [ -z "$uuid" ]; then
      uuid="${position%:*}"
    elif [ "${position%:*}" != "$uuid" ]; then
      log "the nodes hold different histories ($uuid, ${position%:*}); recover by hand"
      exit 1
    fi
    # The most advanced; of equals, a running node (it needs no restart), then the lowest number.
    if [ "$seqno" -gt "$best_seqno" ] || { [ "$seqno" -eq "$best_seqno" ] && [ "$state" = running ] && [ "$best_running" = 0 ]; }; then
      best=$n best_seqno=$seqno best_position=$position best_running=0
      [ "$state" = running ] && best_running=1
    fi
  done <<<"$lines"
  if [ "$best_running" = 1 ]; then
    node_sql "$best" "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'"
    wait_synced "$best" 60
    log "node$best (at $best_seqno, the most advanced) bootstrapped as the primary component"
  else
    for n in $(seq 1 $NODES); do
      if node_pid "$n" >/dev/null; then
        stop_node "$n"
        log "node$n stopped: it is behind node$best ($best_seqno)"
      fi
    done
    # A crashed node's grastate.dat says it is not safe to bootstrap from; the positions say it is.
    sed -i 's/^safe_to_bootstrap: *0/safe_to_bootstrap: 1/' "$(node_dir "$best")/data/grastate.dat"
    prepare_restart "$best"
    launch "$best" --wsrep-new-cluster --wsrep-start-position="$best_position"
    wait_synced "$best" 120
    log "node$best (at $best_seqno, the most advanced) started as the primary component"
  fi
  for n in $(seq 1 $NODES); do
    node_pid "$n" >/dev/null || cmd_restart_node "$n"
  done
  for n in $(seq 1 $NODES); do wait_synced "$n" 120; done
  log "recovered from node$best"
}

# SIGSTOP / SIGCONT of node N's mariadbd: a node that hangs (and is evicted after the EVS timeouts), then wakes up.
cmd_signal_node() {
  local n=$1 signal=$2 pid
  pid="$(node_pid "$n")" || {
    log "node$n is not running"
    exit 1
  }
  kill "-$signal" "$pid"
  log "node$n sent SIG$signal (pid $pid)"
}

cmd_status() {
  local pid
  for n in $(seq 1 $NODES); do
    if pid="$(node_pid "$n")"; then
      echo "node$n pid $pid port $(mysql_port "$n"): $(node_sql "$n" "select group_concat(concat(variable_name,'=',variable_value) order by variable_name separator ' ') from information_schema.global_status where variable_name in ('wsrep_local_state_comment','wsrep_cluster_size','wsrep_ready','wsrep_cluster_status')" || echo 'no answer')"
    else
      echo "node$n not running"
    fi
  done
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
kill-node)
  [[ "${2:-}" =~ ^[1-3]$ ]] || usage
  cmd_kill_node "$2"
  ;;
restart-node)
  [[ "${2:-}" =~ ^[1-3]$ ]] || usage
  cmd_restart_node "$2"
  ;;
pause-node)
  [[ "${2:-}" =~ ^[1-3]$ ]] || usage
  cmd_signal_node "$2" STOP
  ;;
resume-node)
  [[ "${2:-}" =~ ^[1-3]$ ]] || usage
  cmd_signal_node "$2" CONT
  ;;
status) cmd_status ;;
positions) cmd_positions ;;
recover) cmd_recover ;;
*) usage ;;
esac
