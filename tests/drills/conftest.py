"""Fixtures shared by the drills tests."""

from pathlib import Path

import psycopg
import pytest

from backups.models import Database, PitrSetup
from backups.pgbackrest import PgBackRest
from backups.pitr import enable, setup_for
from drills.sandboxes import LocalSandboxes


@pytest.fixture
def archiving_cluster(local_storage, tmp_path, settings):
    """A cluster archiving to pgBackRest, registered as database 'app' with PITR enabled."""
    engine = PgBackRest(PitrSetup(stanza="app"))
    cluster = LocalSandboxes().create(15, extra_settings={
        "wal_level": "replica", "archive_mode": "on", "archive_command": f"'{engine.archive_command()}'",
        "archive_timeout": "60", "max_wal_senders": "2",
    })
    database = Database.objects.create(name="app", host="127.0.0.1", port=cluster.port, dbname="postgres",
                                       user="postgres", primary_storage=local_storage, server_version=150000)
    repo = Path(settings.DATA_DIR) / f"repo-{cluster.port}"
    setup = setup_for(database, repo_path=str(repo))
    report = enable(setup)
    assert report.ok, [s.__dict__ for s in report.steps]
    yield database, cluster, PitrSetup.objects.get(pk=setup.pk)
    cluster.remove()


def sql(cluster, statement):
    with psycopg.connect(host="127.0.0.1", port=cluster.port, user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchone()[0] if cur.description else None
