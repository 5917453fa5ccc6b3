# Shared by scripts/run and scripts/test: a virtualenv with the project, and a reachable RabbitMQ.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${WATCHCENTRE_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

ensure_venv() {  # $1: pip extras, e.g. "dev"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtualenv $VENV"
    "$PY" -m venv "$VENV"
  fi
  local spec="."
  [ -n "${1:-}" ] && spec=".[$1]"
  local stamp="$VENV/.watchcentre-installed-${1:-base}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing watchcentre $spec"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e "$spec"
    touch "$stamp"
  fi
}

amqp_hostport() {
  "$VENV/bin/python" - <<'PY'
import os, re, urllib.parse
# a cluster's addresses are comma-separated (a comma splits only before a scheme): the first is checked
urls = re.split(r"\s*,\s*(?=amqps?://)", os.environ.get("WATCHCENTRE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/").strip())
u = urllib.parse.urlparse(urls[0])
print(u.hostname or "127.0.0.1", u.port or 5672)
PY
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

ensure_management() {  # `watchcentre broker provision` speaks to the management API (local broker only)
  if command -v rabbitmq-plugins >/dev/null 2>&1 && ! port_open 127.0.0.1 15672; then
    rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null 2>&1 \
      || echo "note: could not enable rabbitmq_management (broker provision and its tests need it)" >&2
    for _ in $(seq 1 30); do port_open 127.0.0.1 15672 && break; sleep 1; done
  fi
}

ensure_rabbitmq() {
  read -r host port < <(amqp_hostport)
  if port_open "$host" "$port"; then
    if [ "$host" = 127.0.0.1 ] || [ "$host" = localhost ]; then ensure_management; fi
    return 0
  fi
  if command -v rabbitmq-server >/dev/null 2>&1 && { [ "$host" = 127.0.0.1 ] || [ "$host" = localhost ]; }; then
    echo "==> RabbitMQ not reachable at $host:$port: starting the local rabbitmq-server"
    rabbitmq-server -detached
    for _ in $(seq 1 60); do port_open "$host" "$port" && break; sleep 1; done
    rabbitmqctl await_startup >/dev/null 2>&1 || true
    ensure_management
  fi
  if ! port_open "$host" "$port"; then
    cat >&2 <<MSG
RabbitMQ is not reachable at $host:$port.
  - set WATCHCENTRE_AMQP_URL to a broker you have, or
  - install one: apt-get install rabbitmq-server (then run this again), or
  - docker compose up -d rabbitmq
MSG
    exit 1
  fi
}

ensure_postgres() {
  local url="${WATCHCENTRE_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test}"
  if port_open 127.0.0.1 5432; then return 0; fi
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "==> PostgreSQL not reachable: starting the local cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do port_open 127.0.0.1 5432 && break; sleep 1; done
  fi
  if ! port_open 127.0.0.1 5432; then
    echo "PostgreSQL is not reachable for the integration tests ($url): start it, or docker compose up -d postgres" >&2
    exit 1
  fi
}

ensure_chromium() {  # the console's browser tests drive Debian's chromium (never a downloaded browser)
  if [ -x /usr/bin/chromium ]; then return 0; fi
  if command -v apt-get >/dev/null 2>&1; then
    echo "==> /usr/bin/chromium missing: installing Debian's chromium for the console's browser tests"
    local sudo=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi
    if ! { DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq \
           && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
      echo "could not install chromium with apt-get: install Debian's 'chromium' package (the browser tests need /usr/bin/chromium)" >&2
      exit 1
    fi
  else
    echo "/usr/bin/chromium is missing and apt-get is not available: install Debian's 'chromium' package; the console's browser tests need it" >&2
    exit 1
  fi
}

ensure_promtool() {  # the alert rules are checked and unit-tested with Debian's promtool (package prometheus)
  if command -v promtool >/dev/null 2>&1; then return 0; fi
  if command -v apt-get >/dev/null 2>&1; then
    echo "==> promtool missing: installing Debian's prometheus package (only its promtool is used)"
    local sudo=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi
    if ! { DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq \
           && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; then
      echo "could not install promtool with apt-get: install Debian's 'prometheus' package" >&2
      exit 1
    fi
  fi
  if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool is missing: install Debian's 'prometheus' package (the alert rules are checked with it)" >&2
    exit 1
  fi
}
