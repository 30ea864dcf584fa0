"""Real parts for the tests: PostgreSQL databases, S3 through moto's server
on loopback, local storage directories."""

import subprocess
import uuid
from pathlib import Path

import boto3
import psycopg
import pytest
from django.contrib.auth.models import Group, User

from backups.models import Database, Storage
from controlpanel.roles import ADMIN, OPERATOR, VIEWER
from tests.browser import browser  # noqa: F401  the Chromium fixture, for every page test

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def admin_conn():
    return psycopg.connect(**PG, dbname="postgres", autocommit=True)


@pytest.fixture
def make_pg_database():
    """Create empty databases on the local server; dropped afterwards."""
    created = []

    def make(prefix="rs_src"):
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with admin_conn() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return name

    yield make
    with admin_conn() as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def psql(dbname: str, sql: str) -> str:
    out = subprocess.run(
        ["psql", "-h", PG["host"], "-U", PG["user"], "-d", dbname, "-v", "ON_ERROR_STOP=1", "-qAtX", "-c", sql],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on a free loopback port: real HTTP and SigV4."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


S3_KEYS = {"aws_access_key_id": "testing-key", "aws_secret_access_key": "testing-secret"}


@pytest.fixture
def s3_bucket(s3_endpoint):
    name = f"rs-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **S3_KEYS)
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_client(s3_endpoint):
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **S3_KEYS)


@pytest.fixture
def local_storage(db, tmp_path):
    return Storage.objects.create(name="local", kind=Storage.Kind.LOCAL, path=str(tmp_path / "backups"))


@pytest.fixture
def s3_storage(db, s3_endpoint, s3_bucket):
    return Storage.objects.create(
        name="offsite", kind=Storage.Kind.S3, endpoint_url=s3_endpoint, region="us-east-1",
        bucket=s3_bucket, prefix="restorable", path_style=True, multipart_chunk_mb=5,
        access_key_id=S3_KEYS["aws_access_key_id"], secret_access_key=S3_KEYS["aws_secret_access_key"],
        retention_days=90,
    )


@pytest.fixture
def source_database(db, make_pg_database, local_storage):
    """A Database row pointing at a fresh, empty PostgreSQL database."""
    dbname = make_pg_database()
    database = Database.objects.create(name="app", dbname=dbname, host=PG["host"], port=PG["port"],
                                       user=PG["user"], primary_storage=local_storage)
    return database


def make_user(username: str, role: str | None) -> User:
    user = User.objects.create_user(username=username, password="correct-horse-battery")
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def viewer(db):
    return make_user("vera", VIEWER)


@pytest.fixture
def operator(db):
    return make_user("otto", OPERATOR)


@pytest.fixture
def panel_admin(db):
    return make_user("ada", ADMIN)


@pytest.fixture(scope="session")
def worker_env(django_db_setup):
    """Environment for processes that must see the test database and broker."""
    import os

    from django.conf import settings

    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "RESTORABLE_DATA_DIR": str(settings.DATA_DIR),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, "RESTORABLE_HEARTBEAT_SECONDS": "1"}


@pytest.fixture(scope="session")
def celery_worker(worker_env, tmp_path_factory):
    """A real Celery worker process on the dumps and drills queues (Redis broker)."""
    import sys
    import time

    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "controlpanel", "worker",
             "-Q", f"dumps,drills,{settings.AGENT_QUEUE}",
             "--concurrency", "2", "--loglevel", "INFO", "-n", "test@%h", "--without-mingle", "--without-gossip"],
            env=worker_env, stdout=out, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while b"ready." not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    proc.log = log
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session", autouse=True)
def no_sandbox_left_behind():
    """After the whole run, no sandbox directory or server may remain."""
    yield
    from drills.sandboxes import sandbox_root

    leftovers = list(sandbox_root().iterdir())
    running = subprocess.run(["pgrep", "-f", str(sandbox_root())], capture_output=True, text=True).stdout.strip()
    assert not leftovers and not running, f"sandboxes left behind: {leftovers} {running}"


# What makes a test slow: a real browser, a Celery worker, a live server, pgBackRest, a
# moto process or the quick start of its own (by fixture), or pg_dump, pg_restore and
# initdb at work (by module). `make test-fast` runs the rest, in under a minute.
SLOW_FIXTURES = {"browser", "live_server", "celery_worker", "worker_env", "archiving_cluster", "moto_process",
                 "dumps_worker", "panel"}
SLOW_MODULES = {
    "backups/test_pipeline.py", "backups/test_failures.py", "backups/test_restore_without_restorable.py",
    "backups/test_schema_diff.py", "backups/test_download.py", "backups/test_cli.py",
    "controlpanel/test_alerts.py", "controlpanel/test_settings.py", "controlpanel/test_quickstart.py",
    "controlpanel/test_console_noise.py", "drills/test_drill.py", "drills/test_verification.py",
    "drills/test_pitr.py", "drills/test_sandbox.py", "drills/test_sandbox_lifetime.py",
    "drills/test_sandbox_reaper_worker.py", "drills/test_restore_audit.py", "deploy/test_entrypoint.py",
    "security/test_hostile_table_names.py", "faults/test_cancel.py", "faults/test_killed_worker.py",
    "faults/test_metadata_restart.py", "faults/test_metadata_lost_mid_job.py", "faults/test_broker_restart.py",
    # Property-based: hundreds of generated inputs each.
    "security/test_views_fuzz.py", "security/test_forms_fuzz.py", "security/test_cli_fuzz.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.path.relative_to(Path(__file__).parent).as_posix()
        db = item.get_closest_marker("django_db")
        # A transactional test empties every table afterwards: most of a second on PostgreSQL.
        transactional = db is not None and db.kwargs.get("transaction", False)
        if module in SLOW_MODULES or transactional or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
