#!/usr/bin/env bash
# Starts, stops or reports a private ClickHouse server for development, the
# demo and the tests: data under .aivis/clickhouse, listening on 127.0.0.1
# only. Installs Debian's clickhouse-server with apt when it is missing.
#   deploy/scripts/clickhouse.sh up|down|status
# Environment: AIVISDEV_CH_PORT (native protocol, default 9000),
# AIVISDEV_CH_HTTP_PORT (default 8123), AIVISDEV_CH_DIR (default
# <repo>/.aivis/clickhouse).
# The native protocol is also served over TLS on AIVISDEV_CH_TLS_PORT
# (default the native port + 440: 9440), with a certificate for localhost
# and 127.0.0.1 signed by a self-signed CA made once with openssl in
# $AIVISDEV_CH_DIR/tls (clients trust tls/ca.pem), for the tests of
# clickhouse.tls.
# Besides the package's passwordless "default" user, the server has a user
# with a password, for the tests of clickhouse.username/password:
# AIVISDEV_CH_USER (default aivis_test) and AIVISDEV_CH_PASSWORD (default
# aivis-dev-password; a development server on 127.0.0.1 only).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${AIVISDEV_CH_DIR:-$root/.aivis/clickhouse}
port=${AIVISDEV_CH_PORT:-9000}
http_port=${AIVISDEV_CH_HTTP_PORT:-8123}
tls_port=${AIVISDEV_CH_TLS_PORT:-$((port + 440))}
tlsdir=$dir/tls
pidfile=$dir/clickhouse.pid
ch_user=${AIVISDEV_CH_USER:-aivis_test}
ch_password=${AIVISDEV_CH_PASSWORD:-aivis-dev-password}

say() { echo "clickhouse: $*"; }

answers() { clickhouse-client --host 127.0.0.1 --port "$port" -q 'SELECT 1' >/dev/null 2>&1; }

install() {
  command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null && return
  say "installing clickhouse-server and clickhouse-client with apt (needs root) …"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
}

need_openssl() {
  command -v openssl >/dev/null 2>&1 && return
  say "installing openssl with apt (needs root) …"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq openssl >/dev/null
}

# make_tls: once per data dir, a CA and a server certificate for localhost
# and 127.0.0.1 that it signed. RSA, which every server version's TLS
# library loads.
make_tls() {
  [ -s "$tlsdir/server.pem" ] && [ -s "$tlsdir/server.key" ] && [ -s "$tlsdir/ca.pem" ] && return
  need_openssl
  mkdir -p "$tlsdir"
  local tmp
  tmp=$(mktemp -d "$tlsdir/.make.XXXXXX")
  say "making a self-signed CA and the server's certificate in $tlsdir"
  (
    cd "$tmp"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
      -subj "/CN=aivis development ClickHouse CA" -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile ext.cnf -out server.pem
  ) >"$tmp/openssl.log" 2>&1 || {
    echo "clickhouse: error: making the TLS certificate failed:" >&2
    cat "$tmp/openssl.log" >&2
    rm -rf "$tmp"
    exit 1
  }
  chmod 600 "$tmp"/*.key
  mv "$tmp/ca.pem" "$tmp/ca.key" "$tmp/server.pem" "$tmp/server.key" "$tlsdir/"
  rm -rf "$tmp"
}

# write_users: the package's users.xml plus the password user, stored as
# the SHA-256 of its password.
write_users() {
  case $ch_user in '' | *[!A-Za-z0-9_]*) say "AIVISDEV_CH_USER must be letters, digits and underscores"; exit 1 ;; esac
  local hash
  hash=$(printf %s "$ch_password" | sha256sum | cut -d' ' -f1)
  sed "s#</users>#    <$ch_user><password_sha256_hex>$hash</password_sha256_hex><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></$ch_user>\n    </users>#" \
    /etc/clickhouse-server/users.xml >"$dir/users.xml.tmp"
  mv "$dir/users.xml.tmp" "$dir/users.xml"
}

up() {
  install
  if answers; then
    say "already answering on 127.0.0.1:$port ($(clickhouse-client --port "$port" -q 'SELECT version()'))"
    return
  fi
  mkdir -p "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  write_users
  make_tls
  say "starting on 127.0.0.1:$port (TLS on $tls_port), data in $dir"
  # setsid: Ctrl-C in the terminal that started it must not kill it.
  setsid clickhouse-server --config-file=/etc/clickhouse-server/config.xml -- \
    --path="$dir/" --tmp_path="$dir/tmp/" --user_files_path="$dir/user_files/" \
    --format_schema_path="$dir/format_schemas/" \
    --logger.log="$dir/clickhouse.log" --logger.errorlog="$dir/clickhouse.err" --logger.console=0 \
    --listen_host=127.0.0.1 --tcp_port="$port" --http_port="$http_port" \
    --interserver_http_port=$((port + 9)) --users_config="$dir/users.xml" \
    --tcp_port_secure="$tls_port" --openSSL.server.certificateFile="$tlsdir/server.pem" \
    --openSSL.server.privateKeyFile="$tlsdir/server.key" --openSSL.server.dhParamsFile= \
    >"$dir/stdout.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 60); do
    if answers; then
      say "ready ($(clickhouse-client --port "$port" -q 'SELECT version()'); TLS on $tls_port, CA $tlsdir/ca.pem)"
      return
    fi
    sleep 0.5
  done
  say "did not answer within 30 s; last log lines:"
  tail -n 20 "$dir/clickhouse.err" 2>/dev/null || true
  exit 1
}

down() {
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 40); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.25; done
    rm -f "$pidfile"
    say "stopped"
  else
    say "no server started by this script is running"
  fi
}

status() {
  if answers; then say "up on 127.0.0.1:$port"; else say "down"; exit 1; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
