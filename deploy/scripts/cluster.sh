#!/usr/bin/env bash
# Starts, stops or reports a private local cluster for the cluster tests
# (docs/cluster.md), all on 127.0.0.1:
#   - one Apache ZooKeeper server (jars from Maven Central through
#     deploy/zookeeper/pom.xml, cached once), the coordination service of
#   - four ClickHouse servers, 2 shards x 2 replicas, cluster "aivis_cluster",
#     with macros {shard} and {replica}; and
#   - a three-node Apache Kafka KRaft cluster (each JVM a broker and a
#     controller) with replication factor 3 and min.insync.replicas=2,
#     started through deploy/scripts/kafka.sh.
#
#   deploy/scripts/cluster.sh up                start what is not running and wait until ready
#   deploy/scripts/cluster.sh down [--wipe]     stop everything; --wipe deletes the data
#   deploy/scripts/cluster.sh status            exit 0 when every node answers
#   deploy/scripts/cluster.sh env               print the addresses as AIVISDEV_CLUSTER_* variables
#   deploy/scripts/cluster.sh ch-stop N         stop ClickHouse node N (0..3) with SIGTERM
#   deploy/scripts/cluster.sh ch-start N        start ClickHouse node N and wait until it answers
#   deploy/scripts/cluster.sh kafka-kill N      SIGKILL Kafka node N (1..3)
#   deploy/scripts/cluster.sh kafka-start N     start Kafka node N again and wait until ready
#
# ClickHouse node i is shard i/2+1, replica i%2+1: nodes 0 and 1 hold
# shard 1, nodes 2 and 3 shard 2.
#
# Environment (AIVISDEV_, not AIVIS_):
#   AIVISDEV_CLUSTER_DIR       data, configs and logs, default <repo>/.aivis/cluster
#   AIVISDEV_CLUSTER_CH_PORT   native port of ClickHouse node 0, default 31000; node i
#                              listens on +i, its HTTP port on +10+i, interserver on +20+i
#   AIVISDEV_CLUSTER_ZK_PORT   ZooKeeper client port, default 31181
#   AIVISDEV_CLUSTER_KAFKA_PORT  client port of Kafka node 1, default 31092; node n
#                              uses +2(n-1), its controller the port after it
#   AIVISDEV_CLUSTER_HEAP      maximum heap of each JVM, default 384m
#   AIVISDEV_ZK_HOME           ZooKeeper jar cache, default $HOME/.cache/aivis/zookeeper
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
user_home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
dir=${AIVISDEV_CLUSTER_DIR:-$root/.aivis/cluster}
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
ch_port=${AIVISDEV_CLUSTER_CH_PORT:-31000}
zk_port=${AIVISDEV_CLUSTER_ZK_PORT:-31181}
kafka_port=${AIVISDEV_CLUSTER_KAFKA_PORT:-31092}
heap=${AIVISDEV_CLUSTER_HEAP:-384m}
zk_home=${AIVISDEV_ZK_HOME:-$user_home/.cache/aivis/zookeeper}
case $zk_home in /*) ;; *) zk_home=$PWD/$zk_home ;; esac
zk_pom=$root/deploy/zookeeper/pom.xml
cluster_name=aivis_cluster
# A fixed Kafka cluster id: the three nodes must be formatted with the same one.
kafka_cluster_id=${AIVISDEV_CLUSTER_KAFKA_ID:-YWl2aXNsb2NhbGNsdXN0ZQ}

say() { echo "cluster: $*"; }
fail() {
  echo "cluster: error: $*" >&2
  exit 1
}

for v in "$ch_port" "$zk_port" "$kafka_port"; do
  case $v in '' | *[!0-9]*) fail "ports must be numbers, got '$v'" ;; esac
done

answers() {
  # shellcheck disable=SC2016 # $1 expands in the inner shell
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# ---- ZooKeeper -------------------------------------------------------------

zk_dir=$dir/zookeeper
zk_pidfile=$zk_dir/zookeeper.pid

zk_classpath() {
  [ -f "$zk_pom" ] || fail "missing $zk_pom (run this script from an aivis checkout)"
  local key cdir cp jar ok=1
  key=$(sha256sum "$zk_pom" | cut -c1-16)
  cdir=$zk_home/$key
  if [ -s "$cdir/classpath" ]; then
    cp=$(cat "$cdir/classpath")
    local IFS=:
    for jar in $cp; do [ -f "$jar" ] || ok=0; done
    if [ $ok = 1 ]; then
      echo "$cp"
      return
    fi
  fi
  command -v mvn >/dev/null 2>&1 || fail "Maven (mvn) is needed once to fetch ZooKeeper's jars (apt-get install maven; make kafka-up installs it)"
  mkdir -p "$zk_home"
  local staging
  staging=$(mktemp -d "$zk_home/.resolve.XXXXXX")
  say "resolving ZooKeeper's jars from Maven Central into $cdir (once) …" >&2
  if ! mvn -B -q -f "$zk_pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$staging/libs" >"$staging/mvn.log" 2>&1; then
    tail -n 30 "$staging/mvn.log" >&2
    rm -rf "$staging"
    fail "Maven could not resolve ZooKeeper's jars (is Maven Central reachable?)"
  fi
  rm -rf "$cdir"
  mkdir -p "$cdir"
  mv "$staging/libs" "$cdir/libs"
  rm -rf "$staging"
  cp=""
  for jar in "$cdir"/libs/*.jar; do cp=${cp:+$cp:}$jar; done
  printf '%s\n' "$cp" >"$cdir/classpath.tmp"
  mv "$cdir/classpath.tmp" "$cdir/classpath"
  echo "$cp"
}

# zk_serving: the ZooKeeper server on $zk_port accepts sessions (a server
# whose start failed may still listen, answering that it is not serving).
zk_serving() {
  # shellcheck disable=SC2016 # $1 expands in the inner shell
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf srvr >&3; cat <&3' _ "$zk_port" 2>/dev/null | grep -q '^Mode:'
}

zk_up() {
  if zk_serving; then
    say "ZooKeeper already answers on 127.0.0.1:$zk_port"
    return
  fi
  local cp
  cp=$(zk_classpath)
  mkdir -p "$zk_dir/data"
  cat >"$zk_dir/zoo.cfg" <<CFG
# Written by deploy/scripts/cluster.sh on every start.
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$zk_dir/data
clientPort=$zk_port
clientPortAddress=127.0.0.1
admin.enableServer=false
maxClientCnxns=200
autopurge.purgeInterval=1
CFG
  say "starting ZooKeeper on 127.0.0.1:$zk_port"
  setsid java -Xms64m -Xmx"$heap" -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
    -Dzookeeper.4lw.commands.whitelist=srvr -Dlogback.configurationFile="$root/deploy/zookeeper/logback.xml" -cp "$cp" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$zk_dir/zoo.cfg" \
    >"$zk_dir/stdout.log" 2>&1 </dev/null 8>&- 9>&- &
  echo $! >"$zk_pidfile"
  local i
  for ((i = 0; i < 120; i++)); do
    zk_serving && return
    kill -0 "$(cat "$zk_pidfile")" 2>/dev/null || { tail -n 20 "$zk_dir/stdout.log" >&2; fail "ZooKeeper exited during startup"; }
    sleep 0.5
  done
  fail "ZooKeeper did not answer on 127.0.0.1:$zk_port within 60 s"
}

# ---- ClickHouse ------------------------------------------------------------

ch_node_dir() { echo "$dir/clickhouse$1"; }

ch_install() {
  command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null && return
  say "installing clickhouse-server and clickhouse-client with apt (needs root) …"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
}

ch_config() {
  local i=$1 d shard replica
  d=$(ch_node_dir "$i")
  shard=$((i / 2 + 1))
  replica=$((i % 2 + 1))
  mkdir -p "$d/data" "$d/tmp" "$d/user_files" "$d/format_schemas"
  {
    cat <<XML
<?xml version="1.0"?>
<!-- Written by deploy/scripts/cluster.sh on every start: node $i, shard $shard, replica $replica. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$d/clickhouse.log</log>
        <errorlog>$d/clickhouse.err</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$((ch_port + i))</tcp_port>
    <http_port>$((ch_port + 10 + i))</http_port>
    <interserver_http_port>$((ch_port + 20 + i))</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>134217728</uncompressed_cache_size>
    <mark_cache_size>134217728</mark_cache_size>
    <path>$d/data/</path>
    <tmp_path>$d/tmp/</tmp_path>
    <user_files_path>$d/user_files/</user_files_path>
    <format_schema_path>$d/format_schemas/</format_schema_path>
    <users_config>/etc/clickhouse-server/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mlock_executable>false</mlock_executable>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$zk_port</port></node>
        <session_timeout_ms>10000</session_timeout_ms>
    </zookeeper>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
    <macros>
        <cluster>$cluster_name</cluster>
        <shard>$shard</shard>
        <replica>node$i</replica>
    </macros>
    <remote_servers>
        <$cluster_name>
XML
    local s r
    for s in 0 1; do
      echo "            <shard><internal_replication>true</internal_replication>"
      for r in 0 1; do
        echo "                <replica><host>127.0.0.1</host><port>$((ch_port + s * 2 + r))</port></replica>"
      done
      echo "            </shard>"
    done
    cat <<XML
        </$cluster_name>
    </remote_servers>
</yandex>
XML
  } >"$d/config.xml"
}

ch_answers() { clickhouse-client --host 127.0.0.1 --port "$((ch_port + $1))" -q 'SELECT 1' >/dev/null 2>&1; }

ch_start() {
  local i=$1 d
  d=$(ch_node_dir "$i")
  if ch_answers "$i"; then return; fi
  ch_config "$i"
  setsid clickhouse-server --config-file="$d/config.xml" >"$d/stdout.log" 2>&1 </dev/null 8>&- 9>&- &
  echo $! >"$d/clickhouse.pid"
}

ch_wait() {
  local i=$1 d k
  d=$(ch_node_dir "$i")
  for ((k = 0; k < 120; k++)); do
    ch_answers "$i" && return
    if ! kill -0 "$(cat "$d/clickhouse.pid" 2>/dev/null)" 2>/dev/null; then
      tail -n 20 "$d/clickhouse.err" >&2 2>/dev/null || true
      fail "ClickHouse node $i exited during startup (logs in $d)"
    fi
    sleep 0.5
  done
  tail -n 20 "$d/clickhouse.err" >&2 2>/dev/null || true
  fail "ClickHouse node $i did not answer on 127.0.0.1:$((ch_port + i)) within 60 s"
}

ch_stop() {
  local i=$1 d pid k
  d=$(ch_node_dir "$i")
  pid=$(cat "$d/clickhouse.pid" 2>/dev/null || true)
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$d/clickhouse.pid"
    return
  fi
  kill -TERM "$pid"
  for ((k = 0; k < 120; k++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$d/clickhouse.pid"
}

check_node() {
  case $1 in
    0 | 1 | 2 | 3) ;;
    *) fail "ClickHouse node must be 0..3, got '$1'" ;;
  esac
}

# ---- Kafka -----------------------------------------------------------------

# kafka N ARGS...: runs deploy/scripts/kafka.sh ARGS for Kafka node N (1..3).
kafka() {
  local n=$1 voters="" m
  shift
  for m in 1 2 3; do
    voters=${voters:+$voters,}$m@127.0.0.1:$((kafka_port + 2 * (m - 1) + 1))
  done
  # Client ports PORT, PORT+2, PORT+4 with their controllers one above;
  # the SASL_SSL listeners (which kafka.sh puts at PORT+2 by default, a
  # neighbour's client port here) go to PORT+10..PORT+12.
  AIVISDEV_KAFKA_PORT=$((kafka_port + 2 * (n - 1))) AIVISDEV_KAFKA_SASL_PORT=$((kafka_port + 9 + n)) \
    AIVISDEV_KAFKA_DIR="$dir/kafka$n" AIVISDEV_KAFKA_NODE_ID="$n" \
    AIVISDEV_KAFKA_VOTERS="$voters" AIVISDEV_KAFKA_REPLICATION=3 AIVISDEV_KAFKA_MIN_ISR=2 \
    AIVISDEV_KAFKA_CLUSTER_ID="$kafka_cluster_id" AIVISDEV_KAFKA_HEAP="$heap" \
    AIVISDEV_KAFKA_WAIT=120 "$root/deploy/scripts/kafka.sh" "$@"
}

check_broker() {
  case $1 in
    1 | 2 | 3) ;;
    *) fail "Kafka node must be 1..3, got '$1'" ;;
  esac
}

kafka_brokers() {
  echo "127.0.0.1:$kafka_port,127.0.0.1:$((kafka_port + 2)),127.0.0.1:$((kafka_port + 4))"
}

ch_addrs() {
  echo "127.0.0.1:$ch_port,127.0.0.1:$((ch_port + 1)),127.0.0.1:$((ch_port + 2)),127.0.0.1:$((ch_port + 3))"
}

# ---- commands --------------------------------------------------------------

up() {
  local start=$SECONDS i n pids=()
  ch_install
  mkdir -p "$dir"
  # Installs Java and Maven when missing and caches Kafka's jars.
  "$root/deploy/scripts/kafka.sh" fetch >/dev/null
  zk_up
  for i in 0 1 2 3; do ch_start "$i"; done
  # A KRaft node waits for a quorum of controllers, so the three start at once.
  for n in 1 2 3; do
    kafka "$n" up >"$dir/kafka$n.up.log" 2>&1 &
    pids+=($!)
  done
  for i in 0 1 2 3; do ch_wait "$i"; done
  local failed=0
  for n in 1 2 3; do
    if ! wait "${pids[$((n - 1))]}"; then
      echo "cluster: Kafka node $n failed to start:" >&2
      cat "$dir/kafka$n.up.log" >&2
      failed=1
    fi
  done
  [ $failed = 0 ] || exit 1
  say "ready after $((SECONDS - start)) s: ZooKeeper 127.0.0.1:$zk_port, ClickHouse $(ch_addrs) (cluster $cluster_name), Kafka $(kafka_brokers)"
}

down() {
  local n i
  for n in 1 2 3; do kafka "$n" down >/dev/null 2>&1 || true; done
  for i in 0 1 2 3; do ch_stop "$i"; done
  if [ -f "$zk_pidfile" ] && kill -0 "$(cat "$zk_pidfile")" 2>/dev/null; then
    kill -TERM "$(cat "$zk_pidfile")"
    for _ in $(seq 1 40); do kill -0 "$(cat "$zk_pidfile")" 2>/dev/null || break; sleep 0.25; done
  fi
  rm -f "$zk_pidfile"
  say "stopped"
  if [ "${1:-}" = --wipe ]; then
    case $dir in / | "$user_home" | "$root") fail "refusing to wipe '$dir'" ;; esac
    rm -rf "$dir"
    say "wiped $dir"
  fi
}

status() {
  local ok=0 i n
  zk_serving && say "ZooKeeper up on $zk_port" || { say "ZooKeeper down"; ok=1; }
  for i in 0 1 2 3; do
    ch_answers "$i" && say "ClickHouse node $i up on $((ch_port + i))" || { say "ClickHouse node $i down"; ok=1; }
  done
  for n in 1 2 3; do
    answers $((kafka_port + 2 * (n - 1))) && say "Kafka node $n up on $((kafka_port + 2 * (n - 1)))" || { say "Kafka node $n down"; ok=1; }
  done
  return $ok
}

lock() {
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock -w 300 9 || fail "another cluster.sh holds $dir/.lock for over 300 s"
}

case "${1:-}" in
  up) lock; up ;;
  down) lock; down "${2:-}" ;;
  status) status ;;
  env)
    echo "AIVISDEV_CLUSTER_CLICKHOUSE=$(ch_addrs)"
    echo "AIVISDEV_CLUSTER_NAME=$cluster_name"
    echo "AIVISDEV_CLUSTER_KAFKA=$(kafka_brokers)"
    ;;
  ch-stop) check_node "${2:-}"; ch_stop "$2"; say "ClickHouse node $2 stopped" ;;
  ch-start) check_node "${2:-}"; ch_start "$2"; ch_wait "$2"; say "ClickHouse node $2 up" ;;
  kafka-kill)
    check_broker "${2:-}"
    pid=$(cat "$dir/kafka$2/kafka.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; then
      # Gone, not dying: a start right after must not find its port answering.
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      say "Kafka node $2 (pid $pid) killed"
    else
      say "Kafka node $2 was not running"
    fi
    ;;
  kafka-start) check_broker "${2:-}"; kafka "$2" up ;;
  *)
    echo "usage: $0 up | down [--wipe] | status | env | ch-stop N | ch-start N | kafka-kill N | kafka-start N" >&2
    exit 2
    ;;
esac
