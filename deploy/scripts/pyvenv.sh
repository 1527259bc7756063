# Sourced by the scripts that install one pinned Python package into a
# private venv for the tests (chdb.sh, pykafka.sh). The caller sets:
#   name    what the messages say (chdb, pykafka)
#   venv    the venv's directory
#   pin     the pip requirements, space-separated, e.g. chdb-core==26.9.0
#   module  the module that must import once installed
#   size    roughly what the install downloads, for the message
#   skips   which tests skip when the install fails locally
# and ends with: pyvenv_main "$@"   (up|status|python)
# Idempotent: up returns at once when the pinned version is there. Under
# CI=true a failed install fails; locally it warns and the tests skip.

say() { echo "$name: $*"; }

installed() {
  [ -x "$venv/bin/python" ] && [ -f "$venv/.aivis-pin" ] && [ "$(cat "$venv/.aivis-pin")" = "$pin" ] &&
    "$venv/bin/python" -c "import $module" >/dev/null 2>&1
}

need_venv() {
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 && return
  say "installing python3-venv with apt (needs root) …"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq python3-venv >/dev/null
}

install() {
  command -v python3 >/dev/null || { say "python3 is missing: install it (apt-get install python3)"; return 1; }
  need_venv || return 1
  say "installing $pin into $venv ($size, once) …"
  rm -rf "$venv"
  python3 -m venv "$venv" || return 1
  # shellcheck disable=SC2086 # pin may list several requirements
  "$venv/bin/pip" install --disable-pip-version-check -q $pin || return 1
  echo "$pin" >"$venv/.aivis-pin"
}

up() {
  if installed; then
    say "$pin ready in $venv"
    return
  fi
  local start=$SECONDS
  if install && installed; then
    say "$pin ready in $venv ($((SECONDS - start)) s)"
    return
  fi
  # CI as the tests read it (Go's strconv.ParseBool).
  if [[ "${CI:-}" =~ ^(1|t|T|true|TRUE|True)$ ]]; then
    say "installing $pin failed"
    exit 1
  fi
  say "installing $pin failed; $skips will skip (rerun: $0 up)"
}

pyvenv_main() {
  case "${1:-}" in
    up) up ;;
    status) if installed; then say "$pin ready in $venv"; else say "not installed (run: $0 up)"; exit 1; fi ;;
    python) echo "$venv/bin/python" ;;
    *) echo "usage: $0 up|status|python" >&2; exit 2 ;;
  esac
}
