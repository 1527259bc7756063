#!/usr/bin/env bash
# Starts, stops or reports a private single-node Apache Kafka 4.x broker
# (KRaft: broker and controller in one JVM) for the integration tests, the
# fault tests and CI. It listens on 127.0.0.1 only: PLAINTEXT on the client
# port, and SASL_SSL (SCRAM-SHA-256 and SCRAM-SHA-512 over TLS, as
# production clusters run) on a second port, with a self-signed CA made
# once with openssl in $AIVISDEV_KAFKA_DIR/tls (clients trust tls/ca.pem)
# and one SCRAM user created when the storage is formatted.
#
# The broker's jars come from Maven Central through deploy/kafka/pom.xml and
# are copied once into $AIVISDEV_KAFKA_HOME; later runs need no network.
#
#   deploy/scripts/kafka.sh up             start (resolving the jars if needed) and wait until ready
#   deploy/scripts/kafka.sh down [--wipe]  stop; --wipe also deletes the topics and offsets
#   deploy/scripts/kafka.sh restart        down + up, keeping the data (for fault tests)
#   deploy/scripts/kafka.sh status         exit 0 when the broker answers
#   deploy/scripts/kafka.sh fetch          only resolve the jars (e.g. to warm a CI cache)
#   deploy/scripts/kafka.sh classpath      print the broker's classpath
#
# Environment (AIVISDEV_, not AIVIS_: every AIVIS_ variable is an aivis
# configuration key):
#   AIVISDEV_KAFKA_PORT        client (PLAINTEXT) port, default 19092; the controller uses PORT+1
#   AIVISDEV_KAFKA_SASL_PORT   SASL_SSL client port, default PORT+2
#   AIVISDEV_KAFKA_SASL_USER   SCRAM user of the SASL_SSL listener, default aivis
#   AIVISDEV_KAFKA_SASL_PASSWORD  its password, default aivis-dev-password (a development
#                              broker on 127.0.0.1 only; never reuse it elsewhere)
#   AIVISDEV_KAFKA_DIR         config, data, logs and pid file, default <repo>/.aivis/kafka
#   AIVISDEV_KAFKA_HOME        jar cache, default $HOME/.cache/aivis/kafka
#   AIVISDEV_KAFKA_HEAP        maximum heap (-Xmx), default 512m; the initial heap is 256m
#   AIVISDEV_KAFKA_JVM_OPTS    extra JVM options, appended, so they can override the defaults
#                              (e.g. "-Xms64m -XX:+UseG1GC")
#   AIVISDEV_KAFKA_WAIT        seconds `up` waits for the broker, default 90
#   AIVISDEV_KAFKA_CLUSTER_ID  cluster id of a fresh data dir, 22 characters of URL-safe
#                              base64 (16 bytes), default random; ignored once formatted
#   AIVISDEV_KAFKA_NODE_ID     node.id, default 1
#   AIVISDEV_KAFKA_VOTERS      controller.quorum.voters, default "1@127.0.0.1:PORT+1" (one
#                              node); deploy/scripts/cluster.sh sets it for three nodes
#   AIVISDEV_KAFKA_REPLICATION replication factor of the internal and default topics, default 1
#   AIVISDEV_KAFKA_MIN_ISR     min.insync.replicas, default 1
#   JAVA_HOME                  Java 17+ to use instead of the java on PATH
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pom=$root/deploy/kafka/pom.xml
log4j_conf=$root/deploy/kafka/log4j2.properties
user_home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
dir=${AIVISDEV_KAFKA_DIR:-$root/.aivis/kafka}
cache_home=${AIVISDEV_KAFKA_HOME:-$user_home/.cache/aivis/kafka}
# Absolute paths: they end up in the broker's command line, which `down`
# matches, and in server.properties.
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
case $cache_home in /*) ;; *) cache_home=$PWD/$cache_home ;; esac
port=${AIVISDEV_KAFKA_PORT:-19092}
sasl_user=${AIVISDEV_KAFKA_SASL_USER:-aivis}
sasl_password=${AIVISDEV_KAFKA_SASL_PASSWORD:-aivis-dev-password}
heap=${AIVISDEV_KAFKA_HEAP:-512m}
wait_s=${AIVISDEV_KAFKA_WAIT:-90}
cluster_id=${AIVISDEV_KAFKA_CLUSTER_ID:-}
node_id=${AIVISDEV_KAFKA_NODE_ID:-1}
replication=${AIVISDEV_KAFKA_REPLICATION:-1}
min_isr=${AIVISDEV_KAFKA_MIN_ISR:-1}

props=$dir/server.properties
datadir=$dir/data
logdir=$dir/logs
pidfile=$dir/kafka.pid
stdout_log=$dir/stdout.log

say() { echo "kafka: $*"; }
fail() {
  echo "kafka: error: $*" >&2
  exit 1
}

case $port in
  '' | *[!0-9]*) fail "AIVISDEV_KAFKA_PORT must be a port number, got '$port'" ;;
esac
ctrl_port=$((port + 1))
sasl_port=${AIVISDEV_KAFKA_SASL_PORT:-$((port + 2))}
case $sasl_port in
  '' | *[!0-9]*) fail "AIVISDEV_KAFKA_SASL_PORT must be a port number, got '$sasl_port'" ;;
esac
voters=${AIVISDEV_KAFKA_VOTERS:-$node_id@127.0.0.1:$ctrl_port}
for v in "$node_id" "$replication" "$min_isr"; do
  case $v in
    '' | *[!0-9]*) fail "AIVISDEV_KAFKA_NODE_ID, AIVISDEV_KAFKA_REPLICATION and AIVISDEV_KAFKA_MIN_ISR must be numbers, got '$v'" ;;
  esac
done
if [ "$ctrl_port" -gt 65535 ] || [ "$sasl_port" -gt 65535 ]; then
  fail "AIVISDEV_KAFKA_PORT=$port leaves no room for the controller port (PORT+1) and the SASL_SSL port (PORT+2)"
fi
case $sasl_user$sasl_password in
  *[\],=\"\'[:space:]]*) fail "AIVISDEV_KAFKA_SASL_USER and AIVISDEV_KAFKA_SASL_PASSWORD may not contain spaces, quotes, commas, '=' or ']'" ;;
esac
tlsdir=$dir/tls
# The keystore password protects a development key on 127.0.0.1; it is
# fixed so that the broker's config can name it.
store_password=aivis-dev-keystore

# answers PORT: something accepts TCP connections on 127.0.0.1:PORT.
answers() {
  # shellcheck disable=SC2016 # $1 expands in the inner shell
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

java_bin() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    echo "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    command -v java
  else
    return 1
  fi
}

# apt_install PKG...: installs Debian packages when root (or sudo) allows it.
apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || return 1
    sudo=sudo
  fi
  say "installing $* with apt …"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@" >/dev/null
}

need_java() {
  if ! java_bin >/dev/null; then
    apt_install openjdk-17-jre-headless ||
      fail "no java found; install Java 17 or newer (apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
  fi
  local java version major
  java=$(java_bin)
  version=$("$java" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  major=${version%%.*}
  if [ "$major" = 1 ]; then major=$(echo "$version" | cut -d. -f2); fi
  case $major in
    '' | *[!0-9]*) fail "cannot tell the version of $java (got '$version'); Kafka 4.x needs Java 17+" ;;
  esac
  if [ "$major" -lt 17 ]; then
    fail "$java is Java $version; Kafka 4.x brokers need Java 17 or newer (set JAVA_HOME)"
  fi
}

need_mvn() {
  command -v mvn >/dev/null 2>&1 && return
  apt_install maven ||
    fail "Maven (mvn) is needed once to fetch Kafka's jars; install it (apt-get install maven)"
}

# The cache key is a hash of pom.xml, so editing the pom (e.g. the Kafka
# version) resolves again instead of running stale jars.
cache_dir() {
  local key
  key=$(sha256sum "$pom" | cut -c1-16)
  echo "$cache_home/$key"
}

# cached_classpath: prints the cached classpath if it exists and every jar in
# it is still there; fails otherwise.
cached_classpath() {
  local cpfile cp jar
  cpfile=$(cache_dir)/classpath
  [ -s "$cpfile" ] || return 1
  cp=$(cat "$cpfile")
  local IFS=:
  for jar in $cp; do
    [ -f "$jar" ] || return 1
  done
  echo "$cp"
}

# resolve: makes sure the jars are in the cache (running Maven only when they
# are not) and prints the classpath.
resolve() {
  [ -f "$pom" ] || fail "missing $pom (run this script from an aivis checkout)"
  if cached_classpath; then return; fi
  mkdir -p "$cache_home"
  # Another kafka.sh (another data dir) may be resolving into the same cache.
  exec 8>"$cache_home/.lock"
  flock -w 600 8 || fail "another kafka.sh holds $cache_home/.lock for over 600 s"
  if cached_classpath; then return; fi
  need_mvn
  local cdir staging start
  cdir=$(cache_dir)
  staging=$(mktemp -d "$cache_home/.resolve.XXXXXX")
  say "resolving Kafka's jars from Maven Central into $cdir (once) …" >&2
  start=$SECONDS
  if ! mvn -B -q -f "$pom" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$staging/libs" >"$staging/mvn.log" 2>&1; then
    echo "kafka: error: Maven could not resolve the broker's jars; its last lines:" >&2
    tail -n 30 "$staging/mvn.log" >&2
    echo "kafka: check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml) and that deploy/kafka/pom.xml names a served version" >&2
    rm -rf "$staging"
    exit 1
  fi
  local jars=("$staging"/libs/*.jar)
  [ -f "${jars[0]}" ] || fail "Maven resolved no jars (see deploy/kafka/pom.xml)"
  # Move into place, then write the classpath file last: its presence marks a
  # complete cache.
  rm -rf "$cdir"
  mkdir -p "$cdir"
  mv "$staging/libs" "$cdir/libs"
  rm -rf "$staging"
  local cp="" jar
  for jar in "$cdir"/libs/*.jar; do cp=${cp:+$cp:}$jar; done
  printf '%s\n' "$cp" >"$cdir/classpath.tmp"
  mv "$cdir/classpath.tmp" "$cdir/classpath"
  say "resolved ${#jars[@]} jars in $((SECONDS - start)) s" >&2
  echo "$cp"
}

need_openssl() {
  command -v openssl >/dev/null 2>&1 && return
  apt_install openssl || fail "openssl is needed once to make the SASL_SSL listener's certificate; install it (apt-get install openssl)"
}

# make_tls: once per data dir, a CA and a broker certificate for localhost
# and 127.0.0.1 it signed, in a PKCS12 keystore the broker reads. Clients
# trust $tlsdir/ca.pem.
make_tls() {
  [ -s "$tlsdir/broker.p12" ] && [ -s "$tlsdir/ca.pem" ] && return
  need_openssl
  mkdir -p "$tlsdir"
  local tmp
  tmp=$(mktemp -d "$tlsdir/.make.XXXXXX")
  say "making a self-signed CA and the broker's certificate in $tlsdir"
  (
    cd "$tmp"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=aivis development Kafka CA" -keyout ca.key -out ca.pem
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -subj "/CN=localhost" -keyout broker.key -out broker.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile ext.cnf -out broker.pem
    openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
      -out broker.p12 -passout pass:"$store_password"
  ) >"$tmp/openssl.log" 2>&1 || {
    echo "kafka: error: making the TLS certificate failed:" >&2
    cat "$tmp/openssl.log" >&2
    rm -rf "$tmp"
    exit 1
  }
  chmod 600 "$tmp"/*.key "$tmp/broker.p12"
  mv "$tmp/ca.pem" "$tmp/ca.key" "$tmp/broker.p12" "$tlsdir/"
  rm -rf "$tmp"
}

write_props() {
  mkdir -p "$datadir" "$logdir"
  cat >"$props.tmp" <<EOF
# Written by deploy/scripts/kafka.sh on every start; edits here are lost.
# KRaft: this JVM is both a broker and a controller (the only one unless
# AIVISDEV_KAFKA_VOTERS names more).
process.roles=broker,controller
node.id=$node_id
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctrl_port,SASL_SSL://127.0.0.1:$sasl_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sasl_port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs=$datadir

# SASL_SSL: SCRAM over TLS, what production clusters run. The users live in
# the cluster metadata, created by 'format --add-scram'.
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$tlsdir/broker.p12
ssl.keystore.password=$store_password
ssl.key.password=$store_password

# One broker by default: every internal topic has a single replica.
offsets.topic.replication.factor=$replication
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=$replication
share.coordinator.state.topic.min.isr=$min_isr
default.replication.factor=$replication
min.insync.replicas=$min_isr

# Tests create their topics explicitly; consumers join groups without delay.
auto.create.topics.enable=false
num.partitions=6
group.initial.rebalance.delay.ms=0

# Sized for a 2-core machine.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
log.cleaner.threads=1
EOF
  mv "$props.tmp" "$props"
}

# check_cluster_id: fails unless AIVISDEV_KAFKA_CLUSTER_ID is unset or has
# the form of a Kafka cluster id.
check_cluster_id() {
  if [ -n "$cluster_id" ] && ! [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]]; then
    fail "AIVISDEV_KAFKA_CLUSTER_ID must be 22 characters of URL-safe base64 (16 bytes, e.g. MkU3OEVBNTcwNTJENDM2Qk), got '$cluster_id'"
  fi
}

format_once() {
  local cp=$1 java id formatted
  if [ -f "$datadir/meta.properties" ]; then
    formatted=$(sed -n 's/^cluster\.id=//p' "$datadir/meta.properties")
    if [ -n "$cluster_id" ] && [ "$cluster_id" != "$formatted" ]; then
      say "$datadir already has cluster id $formatted; AIVISDEV_KAFKA_CLUSTER_ID=$cluster_id applies to a fresh data dir only ('$0 down --wipe' first)"
    fi
    return
  fi
  java=$(java_bin)
  # A cluster id is 16 random bytes in URL-safe base64 without padding.
  id=${cluster_id:-$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')}
  say "formatting $datadir (cluster id $id)"
  # --cluster-id=ID, not --cluster-id ID: one id in 64 starts with "-", and
  # the storage tool's argparse4j takes a separate word starting with "-"
  # for an option ("argument --cluster-id/-t: expected one argument").
  if ! "$java" -Xmx256m -cp "$cp" -Dlog4j2.configurationFile="$log4j_conf" \
    -Dkafka.logs.dir="$logdir" kafka.tools.StorageTool format \
    --cluster-id="$id" --config "$props" --ignore-formatted \
    --add-scram "SCRAM-SHA-256=[name=$sasl_user,password=$sasl_password]" \
    --add-scram "SCRAM-SHA-512=[name=$sasl_user,password=$sasl_password]" >"$dir/format.log" 2>&1; then
    echo "kafka: error: formatting the storage failed:" >&2
    cat "$dir/format.log" >&2
    exit 1
  fi
  scram_mark >"$dir/scram.users"
}

# scram_mark: what the SCRAM user of this data dir was made from (a hash, so
# that the password is not written down again).
scram_mark() { printf '%s\n' "$sasl_user:$(printf %s "$sasl_password" | sha256sum | cut -c1-16)"; }

# check_scram: a data dir formatted before the SASL_SSL listener existed,
# or with other credentials, lacks the SCRAM user (the broker's jars have no
# admin command line to add it): say how to get it.
check_scram() {
  if [ "$(cat "$dir/scram.users" 2>/dev/null)" = "$(scram_mark)" ]; then return; fi
  say "note: $datadir was formatted without SCRAM user $sasl_user or with another password;" \
    "the tests add it through the PLAINTEXT listener (kadm), or run '$0 down --wipe' and up again"
}

# our_pid: prints the pid of the broker this script started for $dir, if it
# is still running.
our_pid() {
  local pid
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
      tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $props"; then
      echo "$pid"
      return
    fi
  fi
  # The pid file may be gone (e.g. the data dir was wiped while it ran):
  # look for a broker started with this very properties file.
  pgrep -f -- "kafka\.Kafka $props\$" | head -n 1
}

log_size() { stat -c %s "$logdir/server.log" 2>/dev/null || echo 0; }

# started_since OFFSET: server.log has a "started" line after byte OFFSET.
started_since() {
  local off=$1 size
  size=$(log_size)
  [ "$size" -ge "$off" ] || off=0 # the log rolled over
  tail -c +"$((off + 1))" "$logdir/server.log" 2>/dev/null |
    grep -qE 'Kafka Server started|\[KafkaRaftServer nodeId=[0-9]+\] Kafka Server started'
}

# show_log_tail OFFSET: prints what this start wrote: the JVM's own output
# (e.g. a bad option) and server.log after byte OFFSET.
show_log_tail() {
  local off=$1 size
  if [ -s "$stdout_log" ]; then
    echo "kafka: last lines of $stdout_log:" >&2
    tail -n 20 "$stdout_log" >&2
  fi
  size=$(log_size)
  [ "$size" -ge "$off" ] || off=0
  if [ "$size" -gt "$off" ]; then
    echo "kafka: last lines that this start wrote to $logdir/server.log:" >&2
    tail -c +"$((off + 1))" "$logdir/server.log" | tail -n 40 >&2
  else
    echo "kafka: this start wrote nothing to $logdir/server.log" >&2
  fi
}

# wait_ready PID OFFSET: waits until the broker answers on $port and has
# logged its start after byte OFFSET of server.log (OFFSET "" skips the log
# check); fails with the logs when it exits or takes longer than $wait_s.
wait_ready() {
  local pid=$1 off=$2 start=$SECONDS
  while [ $((SECONDS - start)) -lt "$wait_s" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pidfile"
      echo "kafka: error: the broker exited during startup" >&2
      show_log_tail "${off:-0}"
      exit 1
    fi
    if answers "$port" && { [ -z "$off" ] || started_since "$off"; }; then
      return
    fi
    sleep 0.5
  done
  echo "kafka: error: the broker did not become ready within $wait_s s (pid $pid still running; stop it with '$0 down')" >&2
  show_log_tail "${off:-0}"
  exit 1
}

up() {
  local pid
  if answers "$port"; then
    pid=$(our_pid || true)
    if [ -n "$pid" ]; then
      say "already up on 127.0.0.1:$port (pid $pid, data in $datadir)"
    else
      say "127.0.0.1:$port already answers (not started from $dir); using it as is"
    fi
    return
  fi
  pid=$(our_pid || true)
  if [ -n "$pid" ]; then
    say "a broker for $dir is already starting (pid $pid); waiting for it"
    wait_ready "$pid" ""
    say "ready on 127.0.0.1:$port (pid $pid)"
    return
  fi
  if answers "$ctrl_port"; then
    fail "port $ctrl_port (controller, AIVISDEV_KAFKA_PORT+1) is taken by another process; pick another AIVISDEV_KAFKA_PORT"
  fi
  if answers "$sasl_port"; then
    fail "port $sasl_port (SASL_SSL, AIVISDEV_KAFKA_SASL_PORT, default PORT+2) is taken by another process; pick another AIVISDEV_KAFKA_PORT or AIVISDEV_KAFKA_SASL_PORT"
  fi
  need_java
  local cp java
  cp=$(resolve)
  java=$(java_bin)
  make_tls
  write_props
  format_once "$cp"

  local off start
  off=$(log_size)
  start=$SECONDS
  say "starting on 127.0.0.1:$port (controller $ctrl_port), data in $datadir"
  # setsid: the broker gets its own session, so Ctrl-C or a closing terminal
  # in the caller does not reach it. ${AIVISDEV_KAFKA_JVM_OPTS} is split on spaces
  # on purpose.
  # shellcheck disable=SC2086
  setsid "$java" -Xms256m -Xmx"$heap" -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
    -XX:MaxMetaspaceSize=192m -Djava.awt.headless=true -Dfile.encoding=UTF-8 \
    -Dlog4j2.configurationFile="$log4j_conf" -Dkafka.logs.dir="$logdir" \
    ${AIVISDEV_KAFKA_JVM_OPTS:-} \
    -cp "$cp" kafka.Kafka "$props" >"$stdout_log" 2>&1 </dev/null 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$pidfile"
  wait_ready "$pid" "$off"
  check_scram
  say "ready on 127.0.0.1:$port (SASL_SSL on $sasl_port, user $sasl_user, CA $tlsdir/ca.pem) after $((SECONDS - start)) s (pid $pid, log $logdir/server.log)"
}

down() {
  local wipe=${1:-} pid
  pid=$(our_pid || true)
  if [ -n "$pid" ]; then
    say "stopping pid $pid …"
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 80; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "still running after 20 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
      done
    fi
    rm -f "$pidfile"
    say "stopped"
  else
    rm -f "$pidfile"
    if answers "$port"; then
      say "127.0.0.1:$port answers, but not a broker started from $dir; leaving it alone"
    else
      say "no broker started from $dir is running"
    fi
  fi
  if [ "$wipe" = --wipe ]; then
    case $dir in
      / | "$user_home" | "$root") fail "refusing to wipe '$dir'" ;;
    esac
    rm -rf "$dir"
    say "wiped $dir"
  fi
}

status() {
  local pid
  pid=$(our_pid || true)
  if answers "$port"; then
    if [ -n "$pid" ]; then
      say "up on 127.0.0.1:$port (pid $pid, data in $datadir)"
    else
      say "up on 127.0.0.1:$port (not started from $dir)"
    fi
  else
    if [ -n "$pid" ]; then
      say "down: pid $pid runs but 127.0.0.1:$port does not answer (starting or stuck; see $logdir/server.log)"
    else
      say "down"
    fi
    exit 1
  fi
}

usage() {
  echo "usage: $0 up | down [--wipe] | restart | status | fetch | classpath" >&2
  exit 2
}

# lock: one up/down/restart at a time for this data dir (tests running in
# parallel may all call `up`).
lock() {
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock -w 180 9 || fail "another kafka.sh holds $dir/.lock for over 180 s"
}

case "${1:-}" in
  up)
    check_cluster_id
    lock
    up
    ;;
  down)
    case "${2:-}" in
      '' | --wipe)
        lock
        down "${2:-}"
        ;;
      *) usage ;;
    esac
    ;;
  restart)
    check_cluster_id
    lock
    down
    up
    ;;
  status) status ;;
  fetch)
    need_java
    resolve >/dev/null
    say "jars cached in $(cache_dir)"
    ;;
  classpath)
    resolve
    ;;
  *) usage ;;
esac
