#!/usr/bin/env bash
# Restorable's container entrypoint: one image, one role per container.
#
#   web      gunicorn on 0.0.0.0:8000 (runs `migrate` first when RESTORABLE_MIGRATE=true)
#   worker   a Celery worker on RESTORABLE_QUEUES (default dumps,drills)
#   beat     Celery beat: run exactly one per deployment
#   migrate  the one-shot before the others start: migrate, then bootstrap the first admin
#   manage   python manage.py ARGS...
#   other    run as given (bash, celery ... inspect ping, scripts/restore-without-restorable, ...)
#
# Arguments after web, worker or beat are appended to their command line.
# Every long-running role is exec'd, so it receives the container's SIGTERM
# itself (gunicorn's graceful stop, Celery's warm shutdown).
# docs/deployment.md describes the variables read here.
set -euo pipefail

die() {
  echo "restorable: $*" >&2
  exit 78  # EX_CONFIG: the container's configuration is wrong, restarting will not help
}

# true/false the way controlpanel/env.py reads booleans; anything else is an error.
is_true() {
  local name=$1 value=${!1:-}
  case "${value,,}" in
    1 | true | yes | on) return 0 ;;
    0 | false | no | off | "") return 1 ;;
    *) die "$name must be true or false (1/0, yes/no, on/off), not '$value'" ;;
  esac
}

# Without DATABASE_URL the settings fall back to SQLite inside the data dir:
# fine for `make run` on one machine, wrong in containers, where web, worker
# and beat each get their own file and the schedules, runs and users vanish
# with the container.
require_database() {
  if [ -n "${DATABASE_URL:-}" ] || [ -n "${DATABASE_URL_FILE:-}" ]; then
    return 0
  fi
  if is_true RESTORABLE_ALLOW_SQLITE; then
    echo "restorable: no DATABASE_URL; using the embedded SQLite file in $DATA_DIR (RESTORABLE_ALLOW_SQLITE=true)" >&2
    return 0
  fi
  die "DATABASE_URL (or DATABASE_URL_FILE) is not set, so '$role' would use an embedded SQLite file" \
      "inside this container, which other containers cannot share and which is lost with the container." \
      "Set DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DBNAME (or DATABASE_URL_FILE=/run/secrets/...)," \
      "or RESTORABLE_ALLOW_SQLITE=true to run on SQLite anyway (a single container with its data dir on a volume)."
}

# A root-owned bind mount is the usual reason the non-root user cannot write
# here, and Django would only fail later, on the first sandbox or staging file.
require_data_dir() {
  mkdir -p "$DATA_DIR" 2>/dev/null || true
  if [ ! -d "$DATA_DIR" ] || [ ! -w "$DATA_DIR" ]; then
    die "RESTORABLE_DATA_DIR $DATA_DIR is not a writable directory for uid $(id -u);" \
        "give it to that user (chown $(id -u):$(id -g) on the volume or host directory)."
  fi
}

# The image collects static files at build time into RESTORABLE_IMAGE_STATIC.
# STATIC_ROOT is <data dir>/static, and the data dir is usually a volume that
# outlives the image: point it at this image's files, so an upgrade never keeps
# serving the previous release's static files from the volume.
link_static() {
  local source=${RESTORABLE_IMAGE_STATIC:-} target="$DATA_DIR/static"
  [ -n "$source" ] && [ -d "$source" ] || return 0
  [ "$(readlink "$target" 2>/dev/null)" = "$source" ] && return 0
  if [ -d "$target" ] && [ ! -L "$target" ]; then
    rm -rf "$target"  # collectstatic output of an older image or a manual run
  fi
  # rename(2) over the old link is atomic: web and workers may start together.
  ln -sfn "$source" "$target.$$" && mv -Tf "$target.$$" "$target" ||
    echo "restorable: could not point $target at $source; serving whatever is there" >&2
}

prepare() {
  require_database
  require_data_dir
  link_static
}

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
}

cd "$(dirname "$(readlink -f "$0")")/.."
DATA_DIR=${RESTORABLE_DATA_DIR:-$PWD/var}

role=${1:-}
[ $# -gt 0 ] && shift

case "$role" in
  web)
    prepare
    if is_true RESTORABLE_MIGRATE; then
      python manage.py migrate --noinput
    fi
    exec gunicorn controlpanel.wsgi --bind 0.0.0.0:8000 --workers "${WEB_CONCURRENCY:-2}" \
      --threads 4 --timeout 60 --access-logfile - "$@"
    ;;
  worker)
    prepare
    exec celery -A controlpanel worker -Q "${RESTORABLE_QUEUES:-dumps,drills}" \
      --concurrency "${RESTORABLE_WORKER_CONCURRENCY:-2}" --loglevel "${RESTORABLE_LOG_LEVEL:-INFO}" \
      -n "worker@%h" "$@"
    ;;
  beat)
    prepare
    # The schedules are rows (django-celery-beat); --schedule only keeps beat's
    # own state file out of the read-only application directory.
    exec celery -A controlpanel beat --loglevel "${RESTORABLE_LOG_LEVEL:-INFO}" \
      --schedule "$DATA_DIR/celerybeat-schedule" "$@"
    ;;
  migrate)
    prepare
    python manage.py migrate --noinput
    exec python manage.py bootstrap
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  "" | help | -h | --help)
    usage
    [ -n "$role" ] || exit 64
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
