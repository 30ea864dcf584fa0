"""The quick start as a new user meets it: embedded defaults (SQLite, the
filesystem broker), `manage.py up` serving the login page, the admin logging
in to the empty dashboard, and a backup run by up's own worker."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from drills.sandboxes import free_port
from tests.conftest import PG

ROOT = Path(__file__).resolve().parents[2]


def embedded_env(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "RESTORABLE_", "DATABASE_URL", "CELERY_"))}
    env.update(RESTORABLE_DATA_DIR=str(data_dir), RESTORABLE_ADMIN_PASSWORD="first-admin-pass-1",
               RESTORABLE_HEARTBEAT_SECONDS="1")
    return env


def manage(env, *args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture
def panel(tmp_path):
    # Sandboxes outside pytest's temporary root: a pytest session starting
    # elsewhere makes that root 0700 again, and the postgres OS user must reach them.
    sandboxes = Path(tempfile.mkdtemp(prefix="rs-up-sandboxes-"))
    env = {**embedded_env(tmp_path / "var"), "RESTORABLE_SANDBOX_DIR": str(sandboxes)}
    for args in (["migrate", "--noinput"], ["bootstrap"]):
        result = manage(env, *args)
        assert result.returncode == 0, result.stderr
    port = free_port()
    log = open(tmp_path / "up.log", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "up", "--bind", f"127.0.0.1:{port}"],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            httpx.get(base + "/health/live", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield base, env, proc, tmp_path
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
    shutil.rmtree(sandboxes, ignore_errors=True)


def login(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=True, timeout=10)
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    client.post("/login/", data={"username": "admin", "password": "first-admin-pass-1",
                                 "csrfmiddlewaretoken": token}, headers={"Referer": base + "/login/"})
    return client


def test_up_serves_login_and_the_admin_sees_the_empty_dashboard(panel):
    base, env, proc, tmp = panel
    anonymous = httpx.get(base + "/", follow_redirects=False)
    assert anonymous.status_code == 302 and anonymous.headers["location"].startswith("/login/")
    page = httpx.get(base + "/login/")
    assert page.status_code == 200 and "Log in" in page.text
    assert httpx.get(base + "/static/js/htmx.min.js").status_code == 200
    dashboard = login(base).get("/")
    assert "No database is protected yet" in dashboard.text and "Add a database" in dashboard.text
    ready = httpx.get(base + "/health/ready").json()
    assert ready == {"status": "ok", "database": "ok", "broker": "ok"}


def test_a_backup_runs_on_ups_worker_through_the_filesystem_broker(panel, make_pg_database):
    base, env, proc, tmp = panel
    dbname = make_pg_database()
    env = {**env, "APP_DSN": f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{dbname}"}
    assert manage(env, "add_storage", "disk", "--local", str(tmp / "backups")).returncode == 0
    added = manage(env, "add_database", "app", "--dsn-env", "APP_DSN", "--storage", "disk")
    assert added.returncode == 0, added.stderr
    result = manage(env, "backup", "app", "--wait", "--json")
    assert result.returncode == 0, result.stderr + (tmp / "up.log").read_text()[-3000:]
    assert json.loads(result.stdout)["status"] == "succeeded"


def test_ctrl_c_stops_web_worker_and_beat(panel):
    base, env, proc, tmp = panel
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=40) == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(base + "/health/live", timeout=1)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = embedded_env(tmp_path / "var")
    env.update(RESTORABLE_HTTPS="true", DJANGO_SECRET_KEY="x" * 20 + "-production-secret-key-0123456789abcdef",
               DJANGO_ALLOWED_HOSTS="backups.example.com")
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_no_migrations_are_missing(tmp_path):
    result = manage(embedded_env(tmp_path / "var"), "makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout


def test_up_names_the_kept_sandboxes_it_leaves_running_and_removes_the_rest(panel):
    from drills.sandboxes import LABEL, Sandbox

    base, env, proc, tmp = panel
    # A restore's kept sandbox and a drill's left by a killed job, made by a process that then exits.
    made = manage(env, "shell", "-c", (
        "from drills.models import Drill, Restore; from drills.sandboxes import LocalSandboxes; "
        "kept = LocalSandboxes().create(15, keep=True, ttl_seconds=3600, job=Restore(pk=7)); "
        "left = LocalSandboxes().create(15, job=Drill(pk=8)); "
        "print('made', kept.directory, kept.port, left.directory)"))
    assert made.returncode == 0, made.stderr
    kept_dir, kept_port, left_dir = made.stdout.split("made ")[1].split()
    kept = Sandbox(major=15, directory=Path(kept_dir), port=int(kept_port))
    try:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        out = (tmp / "up.log").read_text()
        line = next((row for row in out.splitlines() if kept.name in row), "")
        assert re.search(rf"port {kept_port}\s+until \d{{4}}-\d\d-\d\d \d\d:\d\d .*restore #7", line), out[-2000:]
        assert json.loads((kept.directory / LABEL).read_text())["kept"] is True
        with psycopg.connect(host="127.0.0.1", port=int(kept_port), user="postgres", dbname="postgres") as conn:
            assert conn.execute("SELECT 1").fetchone()[0] == 1  # still up, as the line says
        assert not Path(left_dir).exists() and Path(left_dir).name not in out  # the drill's leftover was removed
    finally:
        kept.remove()
