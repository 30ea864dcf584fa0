"""The container pieces, checked without a container engine.

docker/entrypoint.sh runs under bash with stub `python`, `gunicorn` and
`celery` first on PATH: they stand for the image's binaries and only record how
they were called, so each role's exact command line is checked (the script is
what is under test). docker-compose.yml is parsed as YAML and its services are
run through the same entrypoint; the Dockerfile is read as text, and its
HEALTHCHECK command is run against a local HTTP server.
"""

import http.server
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml  # PyYAML comes with the test extras (moto's server needs it)

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
PG_URL = "postgres://restorable:secret@postgres:5432/restorable"

# Appends one line per call: its pid, its name, then each argument, tab-separated.
STUB = """#!/bin/sh
{ printf '%s\\t%s' "$$" "$(basename "$0")"; for a in "$@"; do printf '\\t%s' "$a"; done; printf '\\n'; } >> "$STUB_LOG"
exit "${STUB_EXIT:-0}"
"""


@dataclass
class Run:
    returncode: int
    pid: int
    stdout: str
    stderr: str
    calls: list  # [(pid, [name, *args]), ...] in call order

    @property
    def argvs(self) -> list[list[str]]:
        return [argv for _pid, argv in self.calls]

    @property
    def exec_argv(self) -> list[str]:
        """The program the script replaced itself with (same pid), if any."""
        execd = [argv for pid, argv in self.calls if pid == self.pid]
        assert len(execd) <= 1
        return execd[0] if execd else []


@pytest.fixture
def entrypoint(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python", "gunicorn", "celery"):
        stub = bin_dir / name
        stub.write_text(STUB)
        stub.chmod(0o755)
    log = tmp_path / "calls.log"
    data_dir = tmp_path / "data"

    def run(*args: str, env: dict | None = None, database: bool = True) -> Run:
        log.write_text("")
        environ = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "STUB_LOG": str(log),
                   "RESTORABLE_DATA_DIR": str(data_dir)}
        if database:
            environ["DATABASE_URL"] = PG_URL
        environ.update(env or {})
        proc = subprocess.Popen(["bash", str(ENTRYPOINT), *args], env=environ, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stdout, stderr = proc.communicate(timeout=60)
        calls = []
        for line in log.read_text().splitlines():
            pid, *argv = line.split("\t")
            calls.append((int(pid), argv))
        return Run(proc.returncode, proc.pid, stdout, stderr, calls)

    run.data_dir = data_dir
    return run


# --- the roles ------------------------------------------------------------------

GUNICORN = ["gunicorn", "controlpanel.wsgi", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4",
            "--timeout", "60", "--access-logfile", "-"]


def test_web_execs_gunicorn_on_all_interfaces(entrypoint):
    result = entrypoint("web")
    assert result.returncode == 0, result.stderr
    assert result.argvs == [GUNICORN]
    assert result.exec_argv == GUNICORN  # exec'd: gunicorn itself gets the container's SIGTERM


def test_web_concurrency_and_extra_arguments(entrypoint):
    result = entrypoint("web", "--log-level", "debug", env={"WEB_CONCURRENCY": "5"})
    assert result.exec_argv == [*GUNICORN[:5], "5", *GUNICORN[6:], "--log-level", "debug"]


def test_web_runs_the_migrations_first_when_asked(entrypoint):
    result = entrypoint("web", env={"RESTORABLE_MIGRATE": "true"})
    assert result.returncode == 0, result.stderr
    assert result.argvs == [["python", "manage.py", "migrate", "--noinput"], GUNICORN]
    assert result.calls[0][0] != result.pid  # migrate is a child that finished before gunicorn
    assert result.exec_argv == GUNICORN


@pytest.mark.parametrize("value", ["false", "0", ""])
def test_web_does_not_migrate_unless_asked(entrypoint, value):
    assert entrypoint("web", env={"RESTORABLE_MIGRATE": value}).argvs == [GUNICORN]


def test_a_failed_migration_does_not_start_the_web_server(entrypoint):
    result = entrypoint("web", env={"RESTORABLE_MIGRATE": "yes", "STUB_EXIT": "3"})
    assert result.returncode == 3
    assert result.argvs == [["python", "manage.py", "migrate", "--noinput"]]


def test_a_misspelt_boolean_names_the_variable(entrypoint):
    result = entrypoint("web", env={"RESTORABLE_MIGRATE": "ture"})
    assert result.returncode == 78
    assert "RESTORABLE_MIGRATE must be true or false" in result.stderr and "ture" in result.stderr
    assert result.calls == []


def test_worker_serves_dumps_and_drills_by_default(entrypoint):
    result = entrypoint("worker")
    assert result.returncode == 0, result.stderr
    assert result.exec_argv == ["celery", "-A", "controlpanel", "worker", "-Q", "dumps,drills", "--concurrency", "2",
                                "--loglevel", "INFO", "-n", "worker@%h"]


def test_worker_queues_and_concurrency_come_from_the_environment(entrypoint):
    result = entrypoint("worker", "--max-tasks-per-child", "10",
                        env={"RESTORABLE_QUEUES": "agent.db1", "RESTORABLE_WORKER_CONCURRENCY": "1",
                             "RESTORABLE_LOG_LEVEL": "DEBUG"})
    assert result.exec_argv == ["celery", "-A", "controlpanel", "worker", "-Q", "agent.db1", "--concurrency", "1",
                                "--loglevel", "DEBUG", "-n", "worker@%h", "--max-tasks-per-child", "10"]


def test_beat_keeps_its_state_file_in_the_data_dir(entrypoint):
    result = entrypoint("beat")
    assert result.returncode == 0, result.stderr
    assert result.exec_argv == ["celery", "-A", "controlpanel", "beat", "--loglevel", "INFO",
                                "--schedule", f"{entrypoint.data_dir}/celerybeat-schedule"]


def test_migrate_migrates_then_bootstraps_the_first_admin(entrypoint):
    result = entrypoint("migrate")
    assert result.returncode == 0, result.stderr
    assert result.argvs == [["python", "manage.py", "migrate", "--noinput"], ["python", "manage.py", "bootstrap"]]
    assert result.exec_argv == ["python", "manage.py", "bootstrap"]


def test_manage_passes_its_arguments_to_manage_py(entrypoint):
    # No database check: `manage check --deploy` or `manage shell` must work anywhere.
    result = entrypoint("manage", "add_storage", "r2", "--region", "auto", database=False)
    assert result.returncode == 0, result.stderr
    assert result.exec_argv == ["python", "manage.py", "add_storage", "r2", "--region", "auto"]


def test_anything_else_runs_as_given(entrypoint):
    result = entrypoint("celery", "-A", "controlpanel", "inspect", "ping", database=False)
    assert result.exec_argv == ["celery", "-A", "controlpanel", "inspect", "ping"]
    echoed = entrypoint("echo", "hello world", database=False)
    assert echoed.returncode == 0 and echoed.stdout == "hello world\n"


def test_help_lists_the_roles(entrypoint):
    result = entrypoint("help", database=False)
    assert result.returncode == 0
    for role in ("web", "worker", "beat", "migrate", "manage"):
        assert re.search(rf"^\s+{role}\s", result.stdout, re.MULTILINE), role
    assert entrypoint(database=False).returncode == 64  # no role at all: usage, and a failure


# --- the database guard -----------------------------------------------------------


@pytest.mark.parametrize("role", ["web", "worker", "beat", "migrate"])
def test_without_database_url_the_roles_refuse_the_embedded_sqlite(entrypoint, role):
    result = entrypoint(role, database=False)
    assert result.returncode == 78
    assert "DATABASE_URL (or DATABASE_URL_FILE) is not set" in result.stderr
    assert "RESTORABLE_ALLOW_SQLITE=true" in result.stderr
    assert result.calls == []  # nothing started, not even migrate


def test_an_empty_database_url_counts_as_unset(entrypoint):
    result = entrypoint("web", env={"DATABASE_URL": ""}, database=False)
    assert result.returncode == 78 and "DATABASE_URL" in result.stderr


def test_database_url_file_is_enough(entrypoint, tmp_path):
    secret = tmp_path / "database_url"
    secret.write_text(PG_URL + "\n")
    result = entrypoint("worker", env={"DATABASE_URL_FILE": str(secret)}, database=False)
    assert result.returncode == 0, result.stderr
    assert result.exec_argv[:4] == ["celery", "-A", "controlpanel", "worker"]


def test_sqlite_can_be_allowed_explicitly(entrypoint):
    result = entrypoint("web", env={"RESTORABLE_ALLOW_SQLITE": "true"}, database=False)
    assert result.returncode == 0, result.stderr
    assert result.exec_argv == GUNICORN
    assert "SQLite" in result.stderr  # said once, on stderr


def test_a_data_dir_that_cannot_be_created_is_reported(entrypoint, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = entrypoint("web", env={"RESTORABLE_DATA_DIR": str(blocker / "data")})
    assert result.returncode == 78
    assert f"RESTORABLE_DATA_DIR {blocker / 'data'} is not a writable directory" in result.stderr
    assert result.calls == []


# --- static files from the image -----------------------------------------------------


def test_the_data_dir_serves_the_image_static_files_not_a_stale_copy(entrypoint, tmp_path):
    image_static = tmp_path / "image-static"
    (image_static / "css").mkdir(parents=True)
    (image_static / "css" / "app.css").write_text("new")
    stale = entrypoint.data_dir / "static" / "css"
    stale.mkdir(parents=True)
    (stale / "app.css").write_text("old, from the previous image")

    for _ in range(2):  # and again, as on every restart
        result = entrypoint("web", env={"RESTORABLE_IMAGE_STATIC": str(image_static)})
        assert result.returncode == 0, result.stderr
        link = entrypoint.data_dir / "static"
        assert link.is_symlink() and os.readlink(link) == str(image_static)
        assert (link / "css" / "app.css").read_text() == "new"
    assert [p.name for p in entrypoint.data_dir.iterdir()] == ["static"]  # no temporary links left


def test_without_image_static_files_the_data_dir_is_left_alone(entrypoint):
    (entrypoint.data_dir / "static").mkdir(parents=True)
    assert entrypoint("web").returncode == 0
    assert not (entrypoint.data_dir / "static").is_symlink()


# --- docker-compose.yml ---------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def restorable_services() -> dict:
    return {name: s for name, s in compose()["services"].items() if s.get("image", "").startswith("restorable")}


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with nothing set in .env or the shell."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))


def test_compose_parses_and_has_the_production_services():
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", "web", "beat", "worker-dumps", "worker-drills"} <= set(services)
    assert services["postgres"]["image"] == "postgres:16" and "healthcheck" in services["postgres"]
    assert set(restorable_services()) == {"migrate", "web", "beat", "worker-dumps", "worker-drills"}


def test_every_restorable_service_runs_a_role_the_entrypoint_knows(entrypoint, tmp_path):
    secret = tmp_path / "database_url"
    secret.write_text(PG_URL)
    expected = {"web": "gunicorn", "beat": "celery", "worker-dumps": "celery", "worker-drills": "celery",
                "migrate": "python"}
    for name, service in restorable_services().items():
        env = {k: interpolate(v) for k, v in service["environment"].items()}
        env.update(DATABASE_URL_FILE=str(secret), RESTORABLE_DATA_DIR=str(entrypoint.data_dir))
        result = entrypoint(*service["command"], env=env, database=False)
        assert result.returncode == 0, (name, result.stderr)
        assert result.exec_argv and result.exec_argv[0] == expected[name], (name, result.argvs)
        if name.startswith("worker-"):
            queue = name.removeprefix("worker-")
            assert result.exec_argv[result.exec_argv.index("-Q") + 1] == queue


def test_compose_shares_one_environment_through_anchors():
    text = COMPOSE.read_text()
    assert "&restorable-environment" in text and text.count("*restorable-environment") >= 3
    services = restorable_services()
    shared = services["beat"]["environment"]
    for name, service in services.items():
        assert {k: v for k, v in service["environment"].items() if k in shared} == shared, name
    assert "DATABASE_URL" not in shared  # the URL holds a password: only ever from a secret file


def test_compose_secrets_are_files_mounted_where_the_variables_point():
    config = compose()
    declared = config["secrets"]
    assert all(set(secret) == {"file"} and secret["file"].startswith("./secrets/") for secret in declared.values())
    for name, service in config["services"].items():
        mounted = set(service.get("secrets", []))
        assert mounted <= set(declared), name
        for variable, value in (service.get("environment") or {}).items():
            if variable.endswith("_FILE"):
                assert value.startswith("/run/secrets/") and value.removeprefix("/run/secrets/") in mounted, \
                    (name, variable)
    needed = {"DATABASE_URL_FILE", "DJANGO_SECRET_KEY_FILE", "RESTORABLE_SECRETS_KEY_FILE"}
    for name, service in restorable_services().items():
        assert needed <= set(service["environment"]), name


def test_compose_startup_order_and_health():
    services = compose()["services"]
    for name in ("web", "beat", "worker-dumps", "worker-drills"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert "migrate" not in services["migrate"]["depends_on"]
    assert services["migrate"]["restart"] == "no"
    assert services["beat"]["healthcheck"] == {"disable": True}
    for name in ("worker-dumps", "worker-drills"):
        test = services[name]["healthcheck"]["test"]
        # The node the entrypoint names (-n worker@%h) is the one pinged.
        assert test[0] == "CMD-SHELL"
        words = shlex.split(test[1].replace("$$", "$"))  # compose turns $$ into $
        assert words[:5] == ["celery", "-A", "controlpanel", "inspect", "ping"]
        assert words[words.index("-d") + 1] == "worker@$HOSTNAME"
    assert services["web"]["healthcheck"]["test"] == ["CMD", *dockerfile_healthcheck()]


def test_the_try_profile_is_optional():
    services = compose()["services"]
    assert services["minio"]["profiles"] == ["try"] and services["createbuckets"]["profiles"] == ["try"]
    assert services["createbuckets"]["image"].startswith("minio/mc")
    assert "mc mb" in " ".join(services["createbuckets"]["command"])
    for name, service in services.items():
        if "profiles" not in service:  # `docker compose up` without --profile must not need them
            assert not set(service.get("depends_on", [])) & {"minio", "createbuckets"}, name


# --- Dockerfile ---------------------------------------------------------------------


def dockerfile() -> str:
    return DOCKERFILE.read_text()


def dockerfile_healthcheck() -> list[str]:
    match = re.search(r"^HEALTHCHECK [^\n]*\\\n\s+CMD (\[.*\])$", dockerfile(), re.MULTILINE)
    assert match, "HEALTHCHECK ... CMD [...] (exec form) not found"
    return json.loads(match.group(1))


def test_dockerfile_base_and_pgdg_repository():
    text = dockerfile()
    assert re.search(r"^FROM python:3\.11-slim-bookworm$", text, re.MULTILINE)
    assert "signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc" in text
    assert "https://apt.postgresql.org/pub/repos/apt ${VERSION_CODENAME}-pgdg main" in text
    assert "create_main_cluster = false" in text


def test_dockerfile_installs_pgbackrest_and_postgresql_13_to_17():
    text = dockerfile()
    majors = re.search(r'^ARG PG_MAJORS="([0-9 ]+)"$', text, re.MULTILINE).group(1).split()
    assert majors == ["13", "14", "15", "16", "17"]
    base = re.search(r'packages="([^"]+)"', text).group(1).split()
    per_major = re.search(r'for major in \$PG_MAJORS; do packages\+=" ([^"]+)"; done', text).group(1).split()
    packages = set(base) | {p.replace("${major}", m) for p in per_major for m in majors}
    assert {"pgbackrest", "zstd"} <= packages
    assert {f"postgresql-client-{m}" for m in range(13, 18)} <= packages
    assert {f"postgresql-{m}" for m in range(13, 18)} <= packages  # initdb/pg_ctl for sandboxes
    assert "stunnel4" not in packages


def test_dockerfile_installs_the_project_and_runs_as_uid_10001():
    text = dockerfile()
    assert "pip install --no-deps ." in text
    assert re.search(r"RESTORABLE_DATA_DIR=/tmp/\S+ python manage.py collectstatic --noinput", text)
    assert "--uid 10001" in text and "restorable" in text
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert "RESTORABLE_DATA_DIR=/var/lib/restorable" in text
    assert re.search(r'^ENTRYPOINT \[.*"/app/docker/entrypoint.sh"\]$', text, re.MULTILINE)
    assert re.search(r'^CMD \["web"\]$', text, re.MULTILINE)


def test_the_entrypoint_is_executable():
    assert os.access(ENTRYPOINT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(ENTRYPOINT)]).returncode == 0


def test_secrets_and_local_state_stay_out_of_the_build_context():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {"secrets/", ".env", "var/", ".venv/", ".git/"} <= ignored


class Health(http.server.BaseHTTPRequestHandler):
    status = 200
    seen: list = []

    def do_GET(self):
        Health.seen.append((self.path, self.headers["Host"], self.headers["X-Forwarded-Proto"]))
        self.send_response(Health.status)
        if Health.status in (301, 302):
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/elsewhere")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Health.seen, Health.status = [], 200
    yield server
    server.shutdown()
    server.server_close()


def run_healthcheck(port: int, allowed_hosts: str | None) -> int:
    argv = [arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for arg in dockerfile_healthcheck()]
    env = {"PATH": os.environ["PATH"]}
    if allowed_hosts is not None:
        env["DJANGO_ALLOWED_HOSTS"] = allowed_hosts
    argv[0] = sys.executable  # the image's `python`
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode


@pytest.mark.parametrize("allowed, host", [
    (None, "127.0.0.1"),
    ("backups.example.com,127.0.0.1", "backups.example.com"),
    (".example.com", "example.com"),
    ("*", "127.0.0.1"),
])
def test_the_healthcheck_asks_health_live_as_an_allowed_host(health_server, allowed, host):
    assert run_healthcheck(health_server.server_port, allowed) == 0
    assert Health.seen == [("/health/live", host, "https")]


@pytest.mark.parametrize("status", [503, 500, 400, 301])
def test_the_healthcheck_fails_on_anything_but_200(health_server, status):
    Health.status = status
    assert run_healthcheck(health_server.server_port, None) != 0
    assert [path for path, _host, _proto in Health.seen] == ["/health/live"]  # a redirect is not followed


def test_the_healthcheck_fails_when_nothing_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert run_healthcheck(port, None) != 0

