#!/usr/bin/env bash
# Private RabbitMQ and Postgres servers from the Debian packages, for ./platform and tests/Platform.Testing.
# Both callers use this script so the start logic lives in one place.
#
#   infra.sh install
#   infra.sh rabbitmq-start DIR AMQP_PORT MGMT_PORT [SEED_DIR]
#                                                     -> prints amqp://platform:PASS@127.0.0.1:AMQP_PORT/
#   infra.sh rabbitmq-stop DIR [--discard | --kill]
#   infra.sh postgres-start DIR PORT                  -> prints Host=127.0.0.1;Port=PORT;Username=platform;Password=PASS
#   infra.sh postgres-standby-start DIR PORT PRIMARY_DIR
#                                                     -> the same, for a streaming standby of the primary in PRIMARY_DIR
#   infra.sh postgres-promote DIR
#   infra.sh postgres-stop DIR [--discard | --kill]
#
# SEED_DIR: the new node joins the cluster of the running node in SEED_DIR (same Erlang cookie and password), so three
# starts make a three-node cluster on one machine. A standby is a base backup of the primary that replays its WAL as it
# is written; the primary then commits only once the standby has the commit (synchronous replication), so promoting
# the standby after the primary dies loses no acknowledged write.
# --discard is for throwaway servers: stop at once without a clean shutdown, then delete DIR.
#   infra.sh netns-create ID NODES | netns-cut ID NODE | netns-heal ID NODE | netns-delete ID
#                                                     network namespaces for partition tests (see below); with
#                                                     PLATFORM_RABBITMQ_NETNS and PLATFORM_RABBITMQ_IP set, rabbitmq-start
#                                                     runs the node in that namespace on that address
# --kill is a crash: the server is killed at once (RabbitMQ: SIGKILL; Postgres: immediate shutdown, no checkpoint)
# and its folder kept, so a start brings it back with what it had written.
# stdout carries only the final URI / connection string so callers can capture it; progress goes to stderr.
# Environment:
#   PLATFORM_RABBITMQ_PASSWORD, PLATFORM_POSTGRES_PASSWORD  passwords (default: generated into DIR/password)
#   PLATFORM_INFRA_WAIT_SECONDS                             how long a start waits for readiness (default 60)
#   PLATFORM_INFRA_OWNER_PID                                the server is throwaway and belongs to this process:
#                                                           once it is gone, stop --discard runs. For test runs,
#                                                           which vstest kills 100 ms after the tests finish.
set -euo pipefail

RABBITMQ_BIN=/usr/lib/rabbitmq/bin
WAIT_SECONDS=${PLATFORM_INFRA_WAIT_SECONDS:-60}
SELF=$(readlink -f "$0")

log() { echo "infra: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# free_port VAR: a free port below the ephemeral range, locked while this script and what it starts live.
# shellcheck source=scripts/free-port.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/free-port.sh"

is_root() { [ "$(id -u)" -eq 0 ]; }

# The servers refuse to run as root (Postgres) or must own their files (RabbitMQ): as root they run as their
# package's service user, otherwise as the calling user.
run_as() {
  local user=$1
  shift
  if is_root; then
    setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
  else
    "$@"
  fi
}

own_dir() {
  if is_root; then chown -R "$1:$1" "$2"; fi
}

# Newest installed major version, so an upgraded machine needs no edit here.
postgres_bin() {
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] || return 1
  echo "$dir"
}

check_port() {
  [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ] || die "not a port: $1"
}

port_busy() { [ -n "$(ss -Hltn "sport = :$1")" ]; }

port_answers() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# Reuses DIR/password so a restart keeps the credentials the server was initialised with.
password_for() {
  local file=$1/password value=$2
  if [ -n "$value" ]; then
    if [ -f "$file" ] && [ "$(cat "$file")" != "$value" ]; then
      die "$1 was initialised with another password; remove the folder or use the password in $file"
    fi
  elif [ -f "$file" ]; then
    value=$(cat "$file")
  else
    value=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
  fi
  # The password goes into a URI and a connection string unescaped.
  [[ $value =~ ^[A-Za-z0-9._~-]+$ ]] || die "password may only hold letters, digits and . _ ~ -"
  (umask 077 && printf '%s\n' "$value" >"$file")
  echo "$value"
}

# Seconds since an $EPOCHREALTIME value, to a tenth.
elapsed() {
  local now=${EPOCHREALTIME//[!0-9]/} then=${1//[!0-9]/}
  local tenths=$(((now - then) / 100000))
  echo "$((tenths / 10)).$((tenths % 10))"
}

# The node in DIR is running: its launcher's pid is in DIR/pid and still belongs to a rabbitmq-server (not to a
# process that reused the pid after a crash).
rabbitmq_alive() {
  local pid
  pid=$(cat "$1/pid" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null && grep -q rabbitmq-server "/proc/$pid/cmdline" 2>/dev/null
}

# The rabbitmq scripts and the Postgres -o options split on whitespace.
check_dir() {
  [[ $1 != *[[:space:]]* ]] || die "the folder path may not contain whitespace: $1"
}

# Detached so it outlives this script and the owner's process tree; its output must not hold the caller's
# stdout pipe open.
start_watchdog() {
  local owner=${PLATFORM_INFRA_OWNER_PID:-} command=$1 dir=$2
  [ -n "$owner" ] || return 0
  setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" "$3" "$4" --discard' \
    watchdog "$owner" "$SELF" "$command" "$dir" </dev/null >/dev/null 2>&1 &
}

# Removes a discarded server's folder, and its parent if that is now empty (.platform/test-<pid>/).
discard_dir() {
  rm -rf "$1"
  rmdir "$(dirname "$1")" 2>/dev/null || true
}

check_stop_args() {
  [ $# -eq 2 ] || { [ $# -eq 3 ] && { [ "$3" = --discard ] || [ "$3" = --kill ]; }; } || die "usage: infra.sh $1 DIR [--discard | --kill]"
}

cmd_install() {
  local missing=() pkg
  # pocl + ocl-icd: OpenCL on the CPU, for the OpenCL backend's tests and Worker:Backend=opencl (auto leaves it out on a CPU); libopenblas0-pthread: numpy's fast BLAS, the benchmarks' baseline;
  # chromium: the headless browser the dashboard tests drive (Playwright's own browser download is not used).
  for pkg in rabbitmq-server postgresql python3-numpy pocl-opencl-icd ocl-icd-libopencl1 libopenblas0-pthread chromium; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "rabbitmq-server, postgresql, python3-numpy, OpenCL (PoCL), OpenBLAS and chromium are installed"
    return 0
  fi
  if ! is_root; then
    log "missing packages: ${missing[*]}; run as root:"
    echo "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  # The packages would start system-wide services on the default ports; this platform runs private ones.
  local policy=/usr/sbin/policy-rc.d added=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    added=1
    trap "rm -f $policy" EXIT
  fi
  log "installing ${missing[*]}"
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
  if [ -n "$added" ]; then rm -f "$policy"; fi
}

cmd_rabbitmq_start() {
  [ $# -eq 3 ] || [ $# -eq 4 ] || die "usage: infra.sh rabbitmq-start DIR AMQP_PORT MGMT_PORT [SEED_DIR]"
  local amqp=$2 mgmt=$3 seed=${4:-}
  check_port "$amqp"
  check_port "$mgmt"
  [ -x "$RABBITMQ_BIN/rabbitmq-server" ] || die "rabbitmq-server is not installed; run: infra.sh install"
  check_dir "$1"
  mkdir -p "$1/log"
  local dir pass node uri
  dir=$(readlink -f "$1")
  if [ -n "$seed" ]; then
    seed=$(readlink -f "$seed")
    [ -f "$seed/node" ] && [ -f "$seed/.erlang.cookie" ] || die "no RabbitMQ node has run in $seed to join"
    # The cluster shares its users: a joining node is given the seed's password.
    PLATFORM_RABBITMQ_PASSWORD=$(cat "$seed/password")
  fi
  pass=$(password_for "$dir" "${PLATFORM_RABBITMQ_PASSWORD:-}")
  # A node in a network namespace of its own (netns-create) listens on its address there, is named by it (Erlang long
  # names) and talks to the other nodes over the namespace's links, which netns-cut can take down.
  local netns=${PLATFORM_RABBITMQ_NETNS:-} ip=127.0.0.1 listen=127.0.0.1 in_netns=()
  if [ -n "$netns" ]; then
    ip=${PLATFORM_RABBITMQ_IP:?set PLATFORM_RABBITMQ_IP, the address of the node in its namespace}
    # AMQP on every address of the namespace: the cluster link's and the direct link's.
    listen=0.0.0.0
    in_netns=(ip netns exec "$netns")
    node="platform@$ip"
  else
    node="platform-$amqp@localhost"
  fi
  echo "$node" >"$dir/node"
  uri="amqp://platform:$pass@$ip:$amqp/"

  if rabbitmq_alive "$dir"; then
    grep -qx "listeners.tcp.local = $listen:$amqp" "$dir/rabbitmq.conf" &&
      grep -qx "management.tcp.port = $mgmt" "$dir/rabbitmq.conf" ||
      die "RabbitMQ in $dir is already running on other ports; stop it first"
    log "RabbitMQ in $dir is already running"
    join_cluster "$dir" "$node" "$seed"
    echo "$uri"
    return 0
  fi
  # (A namespace of its own has nothing else on its ports.)
  if [ -z "$netns" ]; then
    port_busy "$amqp" && die "port $amqp is in use"
    port_busy "$mgmt" && die "port $mgmt is in use"
  fi

  # Erlang distribution needs a port of its own. Not AMQP+20000: with AMQP below the ephemeral range that lands in
  # it, where any client socket may hold it when the node starts (dist_port_already_used, seen in a test run). A
  # locked port below the range instead; rabbitmq-server inherits the lock and holds it for its life.
  local dist
  if [ -n "$netns" ]; then dist=25672; else free_port dist; fi

  cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.local = $listen:$amqp
management.tcp.ip = $ip
management.tcp.port = $mgmt
loopback_users = none
default_user = platform
default_pass = $pass
default_user_tags.administrator = true
default_vhost = /
log.console = false
log.file.level = info
# In a cluster, the side of a partition with fewer than half the nodes stops serving until it heals, so two halves
# never accept writes apart (one node alone is a majority of one).
cluster_partition_handling = pause_minority
EOF
  # Nodes of one cluster must share the Erlang cookie (HOME=DIR: the cookie lives in DIR/.erlang.cookie).
  if [ -n "$seed" ] && [ ! -f "$dir/.erlang.cookie" ]; then
    install -m 400 "$seed/.erlang.cookie" "$dir/.erlang.cookie"
  fi
  # Shovels move dead letters back to their queues (./platform dlq replay).
  echo '[rabbitmq_management,rabbitmq_shovel,rabbitmq_shovel_management].' >"$dir/enabled_plugins"
  # An empty env file keeps /etc/rabbitmq/rabbitmq-env.conf from overriding the settings below.
  : >"$dir/rabbitmq-env.conf"
  own_dir rabbitmq "$dir"

  export RABBITMQ_NODENAME=$node
  export RABBITMQ_DIST_PORT=$dist
  export RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
  export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
  export RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
  export RABBITMQ_MNESIA_BASE=$dir/mnesia
  export RABBITMQ_MNESIA_DIR=$dir/mnesia/$node
  export RABBITMQ_PLUGINS_EXPAND_DIR=$dir/mnesia/$node-plugins-expand
  export RABBITMQ_FEATURE_FLAGS_FILE=$dir/mnesia/$node-feature_flags
  export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
  export RABBITMQ_LOG_BASE=$dir/log
  export RABBITMQ_LOGS=$dir/log/rabbit.log
  export RABBITMQ_PID_FILE=$dir/mnesia/$node.pid
  # Keep the distribution port off the network like the listeners. (Erlang's scheduler busy wait needs no flag
  # here: rabbitmq-env already passes +sbwt none +sbwtdcpu none +sbwtdio none, RabbitMQ 3.10.8 as packaged.)
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  if [ -n "$netns" ]; then
    export RABBITMQ_USE_LONGNAME=true
    # Its own network stack: no other node's ports to avoid, and a lost peer noticed in about 10 s, not 60.
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel net_ticktime 10"
  fi

  # epmd is shared by every Erlang node on the machine: start it in its own session so stopping this node
  # (which kills its process group) never takes it down with it.
  setsid "${in_netns[@]}" epmd -daemon </dev/null >/dev/null 2>&1 || true

  log "starting RabbitMQ $node (amqp $amqp, management $mgmt, dist $dist) in $dir"
  local started=$SECONDS t0=$EPOCHREALTIME
  # Not -detached: it fails silently in some setups. HOME=DIR gives the node a private Erlang cookie.
  local as_rabbitmq=()
  if is_root; then as_rabbitmq=(setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups --); fi
  setsid "${in_netns[@]}" "${as_rabbitmq[@]}" env HOME="$dir" "$RABBITMQ_BIN/rabbitmq-server" </dev/null >>"$dir/log/server.out" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/pid"

  until port_answers "$amqp" "$ip" && curl -fsS -o /dev/null -u "platform:$pass" "http://$ip:$mgmt/api/overview" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$dir/log/server.out" "$dir/log/rabbit.log" >&2 2>/dev/null || true
      die "RabbitMQ exited during start; logs in $dir/log"
    fi
    if [ $((SECONDS - started)) -ge "$WAIT_SECONDS" ]; then
      tail -n 40 "$dir/log/rabbit.log" >&2 2>/dev/null || true
      cmd_rabbitmq_stop "$dir" >&2
      die "RabbitMQ was not ready after $WAIT_SECONDS s; logs in $dir/log"
    fi
    sleep 0.2
  done
  log "RabbitMQ ready after $(elapsed "$t0") s"
  start_watchdog rabbitmq-stop "$dir"
  join_cluster "$dir" "$node" "$seed"
  echo "$uri"
}

# join_cluster DIR NODE SEED_DIR: the running node joins the seed's cluster, once (DIR/joined); a restarted member
# finds its cluster again from its own data. Also run for a node found already running, whose join may have failed.
join_cluster() {
  local dir=$1 node=$2 seed=$3 seed_node t0=$EPOCHREALTIME
  [ -n "$seed" ] && [ ! -f "$dir/joined" ] || return 0
  seed_node=$(cat "$seed/node")
  log "joining $node to the cluster of $seed_node"
  rabbitmqctl_in "$dir" "$node" stop_app
  rabbitmqctl_in "$dir" "$node" join_cluster "$seed_node"
  rabbitmqctl_in "$dir" "$node" start_app
  rabbitmqctl_in "$dir" "$node" await_startup
  touch "$dir/joined"
  log "$node joined after $(elapsed "$t0") s"
}

# rabbitmqctl_in DIR NODE ARGS...: rabbitmqctl against the node of DIR, with its cookie; output to stderr.
rabbitmqctl_in() {
  local dir=$1 node=$2
  shift 2
  local in_netns=() names=()
  if [ -n "${PLATFORM_RABBITMQ_NETNS:-}" ]; then
    in_netns=(ip netns exec "$PLATFORM_RABBITMQ_NETNS")
    names=(--longnames)
  fi
  "${in_netns[@]}" "${SELF}" run-as-rabbitmq env HOME="$dir" RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
    "$RABBITMQ_BIN/rabbitmqctl" -q "${names[@]}" -n "$node" "$@" >&2 ||
    die "rabbitmqctl $* on $node failed; logs in $dir/log"
}

# DIR/pid is the launcher script, the leader of the node's session. SIGTERM goes to it alone: it forwards the
# signal to the Erlang VM, which stops the broker cleanly; signalling the whole group at once would also hit
# the VM's helper processes mid-shutdown. The group is only killed if the clean stop hangs.
cmd_rabbitmq_stop() {
  check_stop_args rabbitmq-stop "$@"
  local dir=$1 discard=${2:-} pid
  if ! rabbitmq_alive "$dir"; then
    log "RabbitMQ in $dir is not running"
    if [ "$discard" = --discard ]; then discard_dir "$dir"; else rm -f "$dir/pid"; fi
    return 0
  fi
  pid=$(cat "$dir/pid")
  local t0=$EPOCHREALTIME
  if [ -n "$discard" ]; then
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait_group_gone "$pid" 10 || log "warning: processes of RabbitMQ session $pid are left"
    if [ "$discard" = --kill ]; then
      rm -f "$dir/pid"
      log "RabbitMQ killed after $(elapsed "$t0") s"
    else
      discard_dir "$dir"
      log "RabbitMQ killed and $dir deleted after $(elapsed "$t0") s"
    fi
    return 0
  fi
  log "stopping RabbitMQ (session $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_group_gone "$pid" 30; then
    log "RabbitMQ did not stop within 30 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait_group_gone "$pid" 10 || die "processes of RabbitMQ session $pid are left"
  fi
  rm -f "$dir/pid"
  log "RabbitMQ stopped after $(elapsed "$t0") s"
}

# False if processes of session $1 are still running after $2 seconds. Zombies count as gone: the launcher's
# parent has exited, and PID 1 may take a second to reap them.
wait_group_gone() {
  local started=$SECONDS
  while ps --no-headers -o stat= --sid "$1" | grep -qv '^Z'; do
    [ $((SECONDS - started)) -lt "$2" ] || return 1
    sleep 0.05
  done
}

cmd_postgres_start() {
  [ $# -eq 2 ] || die "usage: infra.sh postgres-start DIR PORT"
  local port=$2
  check_port "$port"
  local bin
  bin=$(postgres_bin) || die "postgresql is not installed; run: infra.sh install"
  check_dir "$1"
  mkdir -p "$1/log"
  local dir pass conn
  dir=$(readlink -f "$1")
  # Unix socket paths are limited to 107 bytes.
  [ ${#dir} -le 80 ] || die "folder path too long for a Postgres socket: $dir"
  pass=$(password_for "$dir" "${PLATFORM_POSTGRES_PASSWORD:-}")
  conn="Host=127.0.0.1;Port=$port;Username=platform;Password=$pass"

  if [ -f "$dir/data/postmaster.pid" ] && run_as postgres "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    # Line 4 of postmaster.pid is the port the running server listens on.
    [ "$(sed -n 4p "$dir/data/postmaster.pid")" = "$port" ] ||
      die "Postgres in $dir is already running on another port; stop it first"
    log "Postgres in $dir is already running"
    echo "$conn"
    return 0
  fi
  port_busy "$port" && die "port $port is in use"
  own_dir postgres "$dir"

  local started=$SECONDS t0=$EPOCHREALTIME
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "initialising Postgres in $dir/data"
    # The password-authenticated superuser is the only role; services create their own databases.
    run_as postgres env HOME="$dir" "$bin/initdb" -D "$dir/data" -U platform --pwfile="$dir/password" \
      --auth=scram-sha-256 --encoding=UTF8 --no-locale >"$dir/log/initdb.log" 2>&1 ||
      {
        tail -n 40 "$dir/log/initdb.log" >&2
        die "initdb failed; log in $dir/log/initdb.log"
      }
    cat >>"$dir/data/postgresql.conf" <<EOF
# platform: many services and test classes share one server
max_connections = 300
fsync = on
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
EOF
  fi

  # pg_stat_statements is loaded (not created: `create extension` is left to whoever wants the view, e.g.
  # ./platform bench e2e) so the statements behind a figure can be read. Set on the command line, not in
  # postgresql.conf, so servers initialised before this line get it too.
  local stats=
  if [ -f "$(dirname "$bin")/lib/pg_stat_statements.so" ]; then
    stats="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
    stats+=" -c pg_stat_statements.track_planning=on -c track_io_timing=on"
  fi
  log "starting Postgres on port $port"
  run_as postgres env HOME="$dir" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log/postgres.log" -w -t "$WAIT_SECONDS" \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $stats" start >&2 ||
    {
      tail -n 40 "$dir/log/postgres.log" >&2 || true
      die "Postgres did not start; log in $dir/log/postgres.log"
    }
  until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; do
    [ $((SECONDS - started)) -lt "$WAIT_SECONDS" ] || die "Postgres was not ready after $WAIT_SECONDS s"
    sleep 0.1
  done
  log "Postgres ready after $(elapsed "$t0") s"
  start_watchdog postgres-stop "$dir"
  echo "$conn"
}

cmd_postgres_stop() {
  check_stop_args postgres-stop "$@"
  local dir=$1 discard=${2:-} bin
  bin=$(postgres_bin) || die "postgresql is not installed"
  if [ ! -f "$dir/data/postmaster.pid" ] || ! run_as postgres "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    log "Postgres in $dir is not running"
  elif [ -n "$discard" ]; then
    # immediate: no checkpoint (the data is about to be deleted, or this is a crash).
    run_as postgres "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >&2
  else
    run_as postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2
  fi
  if [ "$discard" = --discard ]; then discard_dir "$dir"; fi
}

# A base backup of the running primary in PRIMARY_DIR, started as a hot standby that streams its WAL; the primary is
# then told to wait for it on every commit. Started again later, the standby goes on from where it was.
cmd_postgres_standby_start() {
  [ $# -eq 3 ] || die "usage: infra.sh postgres-standby-start DIR PORT PRIMARY_DIR"
  local port=$2 primary bin
  primary=$(readlink -f "$3")
  bin=$(postgres_bin) || die "postgresql is not installed; run: infra.sh install"
  [ -f "$primary/data/postmaster.pid" ] || die "no Postgres is running in $primary"
  check_dir "$1"
  mkdir -p "$1/log"
  local dir primary_port pass
  dir=$(readlink -f "$1")
  primary_port=$(sed -n 4p "$primary/data/postmaster.pid")
  pass=$(cat "$primary/password")
  password_for "$dir" "$pass" >/dev/null
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    own_dir postgres "$dir"
    log "base backup of the primary on port $primary_port into $dir/data"
    # -R writes standby.signal and the primary's address; -X stream copies the WAL written during the backup.
    run_as postgres env HOME="$dir" PGPASSWORD="$pass" "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U platform \
      -D "$dir/data" -R -X stream -c fast >"$dir/log/basebackup.log" 2>&1 ||
      {
        tail -n 40 "$dir/log/basebackup.log" >&2
        die "pg_basebackup failed; log in $dir/log/basebackup.log"
      }
    # Named, so the primary can wait for this standby by name; and without the primary's own wait for a standby (set
    # when an earlier standby started), or once promoted it would wait for one that does not exist.
    sed -i -e "s/^primary_conninfo = '/primary_conninfo = 'application_name=standby /" -e '/^synchronous_standby_names/d' \
      "$dir/data/postgresql.auto.conf"
  fi
  PLATFORM_POSTGRES_PASSWORD=$pass cmd_postgres_start "$dir" "$port"
  # Synchronous from here on: a commit the primary acknowledges is on the standby too. (Not in the backup taken
  # above, so a promoted standby does not wait for a standby of its own.)
  PGPASSWORD="$pass" "$bin/psql" -q -h 127.0.0.1 -p "$primary_port" -U platform -d postgres \
    -c "alter system set synchronous_standby_names = 'standby'" -c "select pg_reload_conf()" >/dev/null ||
    die "could not make the primary on port $primary_port wait for its standby"
  local started=$SECONDS
  until [ "$(PGPASSWORD="$pass" "$bin/psql" -tA -h 127.0.0.1 -p "$primary_port" -U platform -d postgres \
    -c "select count(*) from pg_stat_replication where application_name = 'standby' and sync_state = 'sync'")" = 1 ]; do
    [ $((SECONDS - started)) -lt "$WAIT_SECONDS" ] || die "the standby on port $port did not become synchronous"
    sleep 0.2
  done
  log "standby on port $port is synchronous"
}

# Ends recovery: the standby becomes a primary that takes writes.
cmd_postgres_promote() {
  [ $# -eq 1 ] || die "usage: infra.sh postgres-promote DIR"
  local bin
  bin=$(postgres_bin) || die "postgresql is not installed"
  run_as postgres "$bin/pg_ctl" -D "$1/data" -w -t "$WAIT_SECONDS" promote >&2 || die "promoting the standby in $1 failed"
}

# ------------------------------------------------------------------------------------- network namespaces
#
# For partition tests (Jepsen-style, without netem): NODES namespaces plat<ID>n<i>, each with two links to the
# machine's own namespace, where the services run:
#   the cluster link, a veth on the bridge plat<ID>b (10.213.0.0/24): the node is 10.213.0.<i>, the machine
#     10.213.0.254; the nodes reach each other and every service reaches every node this way;
#   a direct link (10.214.<i>.0/24): the node is also 10.214.<i>.1, the machine 10.214.<i>.254; a service given this
#     address reaches the node even while its cluster link is down.
# netns-cut ID I takes node I's cluster link down: it is cut off from the other nodes and from every service that
# reaches it on the bridge, and still reached by those that use its direct address. netns-heal brings it back.
# ID is a short number (a process id); root only.

netns_prefix() {
  [[ $1 =~ ^[0-9]{1,7}$ ]] || die "not a namespace id: $1"
  echo "plat$1"
}

cmd_netns_create() {
  [ $# -eq 2 ] || die "usage: infra.sh netns-create ID NODES"
  is_root || die "network namespaces need root"
  local prefix nodes=$2 i stale
  prefix=$(netns_prefix "$1")
  local bridge=${prefix}b
  # A set left by a run that died before its watchdog ran would hold the same addresses: its id is its owner's pid.
  for stale in $(ip -o link show type bridge | sed -nE 's/^[0-9]+: plat([0-9]+)b[:@].*/\1/p'); do
    if ! kill -0 "$stale" 2>/dev/null; then
      log "removing the namespaces of dead run $stale"
      cmd_netns_delete "$stale"
    fi
  done
  ip link add "$bridge" type bridge
  ip addr add 10.213.0.254/24 dev "$bridge"
  ip link set "$bridge" up
  for i in $(seq 1 "$nodes"); do
    local ns=${prefix}n$i
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add "${ns}c" type veth peer name c0 netns "$ns"
    ip link set "${ns}c" master "$bridge" up
    ip -n "$ns" addr add "10.213.0.$i/24" dev c0
    ip -n "$ns" link set c0 up
    ip link add "${ns}d" type veth peer name d0 netns "$ns"
    ip addr add "10.214.$i.254/24" dev "${ns}d"
    ip link set "${ns}d" up
    ip -n "$ns" addr add "10.214.$i.1/24" dev d0
    ip -n "$ns" link set d0 up
  done
  start_watchdog netns-delete "$1"
  log "namespaces ${prefix}n1..$nodes on bridge $bridge (10.213.0.0/24), direct links 10.214.<i>.0/24"
}

# Kills whatever still runs in the namespaces, then deletes them and their links. Takes a trailing --discard from the watchdog.
cmd_netns_delete() {
  local prefix ns pid
  prefix=$(netns_prefix "$1")
  for ns in $(ip netns list | awk '{print $1}' | grep "^${prefix}n[0-9]*$"); do
    for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" || true
  done
  ip link del "${prefix}b" 2>/dev/null || true
}

cmd_netns_link() {
  [ $# -eq 3 ] || die "usage: infra.sh netns-cut|netns-heal ID NODE"
  local prefix
  prefix=$(netns_prefix "$1")
  ip link set "${prefix}n$2c" "$3" || die "no cluster link for node $2 of namespace set $1"
  log "node $2's cluster link is $3"
}

case "${1:-}" in
  install) shift && cmd_install "$@" ;;
  rabbitmq-start) shift && cmd_rabbitmq_start "$@" ;;
  rabbitmq-stop) shift && cmd_rabbitmq_stop "$@" ;;
  postgres-start) shift && cmd_postgres_start "$@" ;;
  postgres-stop) shift && cmd_postgres_stop "$@" ;;
  postgres-standby-start) shift && cmd_postgres_standby_start "$@" ;;
  netns-create) shift && cmd_netns_create "$@" ;;
  netns-delete) shift && cmd_netns_delete "$@" ;;
  netns-cut) shift && cmd_netns_link "$1" "$2" down ;;
  netns-heal) shift && cmd_netns_link "$1" "$2" up ;;
  run-as-rabbitmq) shift && run_as rabbitmq "$@" ;;
  postgres-promote) shift && cmd_postgres_promote "$@" ;;
  *) die "usage: infra.sh install | rabbitmq-start DIR AMQP_PORT MGMT_PORT [SEED_DIR] | rabbitmq-stop DIR [--discard | --kill] | postgres-start DIR PORT | postgres-standby-start DIR PORT PRIMARY_DIR | postgres-promote DIR | postgres-stop DIR [--discard | --kill] | netns-create ID NODES | netns-cut ID NODE | netns-heal ID NODE | netns-delete ID" ;;
esac
