"""The day the panel is gone: the bucket and its manifest.json are enough."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backups.services import create_backup_run
from tests.conftest import PG, S3_KEYS, psql

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def test_the_guide_script_restores_from_the_bucket_alone(source_database, s3_storage, make_pg_database):
    psql(source_database.dbname, "CREATE TABLE invoices (id serial PRIMARY KEY, amount int);"
                                 "INSERT INTO invoices (amount) SELECT i FROM generate_series(1, 777) i;")
    source_database.offsite_storages.add(s3_storage)
    run = create_backup_run(source_database)
    run.execute(inline=True)
    target = make_pg_database("rs_no_panel")
    psql("postgres", f'DROP DATABASE "{target}"')
    env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_KEYS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": S3_KEYS["aws_secret_access_key"],
           "PGHOST": PG["host"], "PGPORT": str(PG["port"]), "PGUSER": PG["user"]}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "restore-without-restorable"), "--endpoint-url",
         s3_storage.endpoint_url, "--region", "us-east-1", "--bucket", s3_storage.bucket, "--prefix",
         s3_storage.prefix, "--database", "app", "--target-dbname", target],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "row counts match" in result.stdout and "full.dump.zst: sha256 ok" in result.stdout
    assert psql(target, "SELECT count(*) FROM invoices") == "777"
