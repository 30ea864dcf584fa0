# syntax=docker/dockerfile:1
#
# Restorable: one image for every process. docker/entrypoint.sh picks the
# role from the command: web | worker | beat | migrate | manage ARGS
# (docs/deployment.md).
#
#   docker build -t restorable .
#   docker build --build-arg PG_MAJORS="16 17" -t restorable .   # only the majors you protect
#
# Debian bookworm: the PostgreSQL project's own apt repository (PGDG) publishes
# every PostgreSQL major for it, and python:3.11 is the interpreter the
# project is tested on.
FROM python:3.11-slim-bookworm

# PostgreSQL majors in the image: client tools (pg_dump, pg_dumpall,
# pg_restore, psql) and server binaries (initdb, pg_ctl, postgres). A backup
# runs the pg_dump of the server's major or the nearest newer one, and a
# verification or drill needs a sandbox of exactly the source's major, so list
# every major you protect.
ARG PG_MAJORS="13 14 15 16 17"
ARG DEBIAN_FRONTEND=noninteractive

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    DJANGO_SETTINGS_MODULE=controlpanel.settings \
    RESTORABLE_DATA_DIR=/var/lib/restorable \
    RESTORABLE_PG_BIN_ROOT=/usr/lib/postgresql \
    RESTORABLE_SANDBOX_DIR=/var/tmp/restorable/sandboxes \
    RESTORABLE_STAGING_DIR=/var/tmp/restorable/staging \
    RESTORABLE_IMAGE_STATIC=/usr/local/share/restorable/static \
    PYTHONPATH=/app
# Why these:
# - RESTORABLE_SANDBOX_DIR / _STAGING_DIR: scratch space stays in each
#   container, off the data volume that several containers may share. A
#   sandbox's label records its owner's PID, which means nothing in another
#   container's PID namespace, so a shared sandbox directory would let one
#   container's reaper remove another's running sandbox.
# - PYTHONPATH=/app: templates/ and static/ sit beside the packages
#   (settings.BASE_DIR), so the checkout in /app is the copy that must run,
#   whatever the working directory or console script (celery, gunicorn).

SHELL ["/bin/bash", "-eu", "-o", "pipefail", "-c"]

# The PGDG apt repository. Its signing key ships in Debian's own
# postgresql-common package (/usr/share/postgresql-common/pgdg/), so the key
# arrives signed by the Debian archive rather than fetched over the network.
# postgresql-common is then upgraded to PGDG's before createcluster.conf is
# edited, so no later upgrade meets a locally changed file and stops to ask.
# create_main_cluster = false: the server packages are only here for their
# binaries, so installing them must not create and start a cluster.
RUN apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates postgresql-common; \
    . /etc/os-release; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc]" \
         "https://apt.postgresql.org/pub/repos/apt ${VERSION_CODENAME}-pgdg main" \
         > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends postgresql-common; \
    sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
        /etc/postgresql-common/createcluster.conf; \
    grep -qx 'create_main_cluster = false' /etc/postgresql-common/createcluster.conf; \
    rm -rf /var/lib/apt/lists/*

# - postgresql-client-N: pg_dump/pg_restore per major; postgresql-N: initdb and
#   pg_ctl for sandboxes (both under /usr/lib/postgresql/N/bin).
# - pgbackrest: base backups, WAL archive and PITR restores (from PGDG, newer
#   than Debian's).
# - zstd: decompresses full.dump.zst when restoring by hand
#   (scripts/restore-without-restorable); the panel itself uses the zstandard
#   Python module.
# - tini: PID 1 that reaps orphans. pg_ctl leaves each sandbox's postmaster
#   running in the background, reparented to PID 1; when the sandbox stops,
#   only PID 1 can reap it, and Celery or gunicorn as PID 1 would leave a zombie.
# - tzdata: database schedules run in each database's own time zone.
RUN packages="pgbackrest zstd tini tzdata"; \
    for major in $PG_MAJORS; do packages+=" postgresql-client-${major} postgresql-${major}"; done; \
    apt-get update; \
    UCF_FORCE_CONFFOLD=1 apt-get install -y --no-install-recommends $packages; \
    rm -rf /var/lib/apt/lists/*; \
    for major in $PG_MAJORS; do \
        for tool in pg_dump pg_dumpall pg_restore psql initdb pg_ctl postgres; do \
            test -x "/usr/lib/postgresql/${major}/bin/${tool}" || { echo "missing ${major}/bin/${tool}" >&2; exit 1; }; \
        done; \
    done; \
    pgbackrest version; \
    zstd --version

WORKDIR /app

# Dependencies first, in their own layer, so a source change does not
# reinstall them: the list is read from pyproject.toml itself.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt; \
    pip install -r /tmp/requirements.txt; \
    rm /tmp/requirements.txt

COPY . .

# The project itself (its dependencies are in already). The build leaves
# build/ and *.egg-info in the tree: not part of the image.
RUN pip install --no-deps .; \
    rm -rf build ./*.egg-info; \
    chmod 0755 docker/entrypoint.sh; \
    python -m compileall -q controlpanel backups drills manage.py

# Static files collected once, at build time. RESTORABLE_DATA_DIR points at a
# throwaway directory, so the keys, SQLite file and broker directories that
# settings create on import are not baked into the image. The entrypoint links
# <data dir>/static to RESTORABLE_IMAGE_STATIC at start (see link_static).
RUN RESTORABLE_DATA_DIR=/tmp/build-data python manage.py collectstatic --noinput >/dev/null; \
    mkdir -p "$(dirname "$RESTORABLE_IMAGE_STATIC")"; \
    mv /tmp/build-data/static "$RESTORABLE_IMAGE_STATIC"; \
    rm -rf /tmp/build-data

# A fixed, non-root uid: volumes and Kubernetes' runAsNonRoot can rely on it.
# /var/lib/restorable is created here and owned by that user, so a new named
# volume mounted on it starts with the right owner. (The postgres OS user that
# postgresql-common created is not used in the container.)
RUN groupadd --system --gid 10001 restorable; \
    useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /var/lib/restorable \
            --shell /usr/sbin/nologin restorable; \
    install -d -o restorable -g restorable -m 0750 /var/lib/restorable; \
    install -d -o restorable -g restorable -m 0755 /var/tmp/restorable

USER 10001:10001
EXPOSE 8000

# For web: /health/live answers 200 whenever the Django process serves. It is
# sent with the first host of DJANGO_ALLOWED_HOSTS (Django answers 400 to a
# host it does not know) and X-Forwarded-Proto: https (with
# RESTORABLE_HTTPS=true behind a proxy, plain HTTP would be redirected).
# Redirects are not followed: a redirect means a misconfiguration, and
# following it could report some other server as healthy.
# Workers have no HTTP port: compose overrides this with
# `celery -A controlpanel inspect ping -d worker@$HOSTNAME`, and beat disables
# it (docs/deployment.md).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; h = os.environ.get('DJANGO_ALLOWED_HOSTS', '').split(',')[0].strip().lstrip('.'); h = h if h not in ('', '*') else '127.0.0.1'; no_redirect = type('NoRedirect', (r.HTTPRedirectHandler,), {'redirect_request': lambda *a: None}); r.build_opener(no_redirect).open(r.Request('http://127.0.0.1:8000/health/live', headers={'Host': h, 'X-Forwarded-Proto': 'https'}), timeout=8)"]

ENTRYPOINT ["/usr/bin/tini", "--", "/app/docker/entrypoint.sh"]
CMD ["web"]
