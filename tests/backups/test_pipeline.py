"""A backup restores to the same data: real PostgreSQL, real pg_dump, S3 over HTTP."""

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import zstandard

from backups.models import BackupRun
from backups.services import create_backup_run
from backups.storage import backend_for
from controlpanel.jobs import Status
from tests.conftest import PG, psql

SCHEMA = (Path(__file__).parent / "schema.sql").read_text()

FACTS_SQL = {
    "customers": "SELECT count(*) FROM customers",
    "orders": 'SELECT count(*) FROM "Bestellungen_ÄÖÜ"',
    "events_2025": "SELECT count(*) FROM events_2025",
    "events_2026": "SELECT count(*) FROM events_2026",
    "matview": "SELECT count(*) FROM customer_orders",
    "large_objects": "SELECT count(*) FROM pg_largeobject_metadata",
    "invoice_no": "SELECT last_value FROM invoice_no",
    "identity": "SELECT last_value FROM customers_id_seq",
    "serial": """SELECT last_value FROM "Bestellungen_ÄÖÜ_id_seq" """,
    "extensions": "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension",
    "trigger": "SELECT count(*) FROM pg_trigger WHERE tgname = 'customers_touch'",
    "enum": "SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum",
}


def facts(dbname: str) -> dict:
    return {name: psql(dbname, sql) for name, sql in FACTS_SQL.items()}


def fetch_dump(backend, key: str, dest: Path) -> Path:
    """Download an artifact, undoing the zstd stream when there is one."""
    with open(dest, "wb") as out:
        if key.endswith(".zst"):
            decompressor = zstandard.ZstdDecompressor().decompressobj()
            for chunk in backend.read(key):
                out.write(decompressor.decompress(chunk))
        else:
            for chunk in backend.read(key):
                out.write(chunk)
    return dest


def pg_restore(dump: Path, dbname: str) -> None:
    subprocess.run(["pg_restore", "-h", PG["host"], "-U", PG["user"], "--no-owner", "--exit-on-error",
                    "--jobs", "2", "-d", dbname, str(dump)], check=True, capture_output=True, text=True)


@pytest.fixture
def rich_database(source_database):
    psql(source_database.dbname, SCHEMA)
    return source_database


def backup_inline(database) -> BackupRun:
    run = create_backup_run(database)
    run.execute(inline=True)
    run.refresh_from_db()
    return run


@pytest.mark.django_db(transaction=True)
def test_backup_restores_identical_rows_and_sequences_from_every_storage(
    rich_database, s3_storage, make_pg_database, tmp_path
):
    rich_database.offsite_storages.add(s3_storage)
    run = backup_inline(rich_database)
    assert run.status == Status.SUCCEEDED, run.error
    names = {a.name for a in run.artifacts.all()}
    assert names == {"schema.sql", "full.dump.zst", "manifest.json"}
    assert run.row_counts["public.customers"] == {"rows": 500, "exact": True}
    assert run.row_counts['public."Bestellungen_ÄÖÜ"']["rows"] == 1200
    assert run.row_counts["public.events_2025"]["rows"] + run.row_counts["public.events_2026"]["rows"] == 800

    expected = facts(rich_database.dbname)
    for storage in (rich_database.primary_storage, s3_storage):
        backend = backend_for(storage)
        artifacts = {a.name: a for a in run.artifacts.filter(storage=storage)}
        assert artifacts["full.dump.zst"].key == backend.key("app", run.stamp, "full.dump.zst")
        manifest = json.loads(b"".join(backend.read(artifacts["manifest.json"].key)))
        for entry in manifest["files"]:
            data = b"".join(backend.read(artifacts[entry["name"]].key))
            assert hashlib.sha256(data).hexdigest() == entry["sha256"] == artifacts[entry["name"]].sha256
            assert len(data) == entry["size"]
        assert manifest["row_counts"] == run.row_counts
        target = make_pg_database("rs_restored")
        pg_restore(fetch_dump(backend, artifacts["full.dump.zst"].key, tmp_path / f"{storage.name}.dump"), target)
        assert facts(target) == expected


@pytest.mark.django_db(transaction=True)
def test_schema_sql_is_plain_sql_without_owners(rich_database):
    run = backup_inline(rich_database)
    artifact = run.artifacts.get(name="schema.sql")
    text = b"".join(backend_for(artifact.storage).read(artifact.key)).decode()
    assert 'CREATE TABLE public."Bestellungen_ÄÖÜ"' in text
    assert "OWNER TO" not in text and "GRANT " not in text
    assert "INSERT INTO" not in text and "COPY " not in text


@pytest.mark.django_db(transaction=True)
def test_row_counts_come_from_the_dump_snapshot_and_big_tables_are_estimated(rich_database, settings):
    settings.ROW_COUNT_EXACT_LIMIT = 1000
    psql(rich_database.dbname, 'ANALYZE')
    run = backup_inline(rich_database)
    assert run.row_counts['public."Bestellungen_ÄÖÜ"']["exact"] is False
    assert run.row_counts["public.customers"] == {"rows": 500, "exact": True}


@pytest.mark.django_db(transaction=True)
def test_globals_are_dumped_without_role_passwords(rich_database):
    psql(rich_database.dbname,
         "DROP ROLE IF EXISTS rs_app_role; CREATE ROLE rs_app_role LOGIN PASSWORD 'pw-never-dumped'")
    try:
        rich_database.include_globals = True
        rich_database.save()
        run = backup_inline(rich_database)
        artifact = run.artifacts.get(name="globals.sql")
        text = b"".join(backend_for(artifact.storage).read(artifact.key)).decode()
        assert ("rs_app_role" in text and "pw-never-dumped" not in text
                and "PASSWORD" not in text.upper().replace("NOPASSWORD", ""))
    finally:
        psql("postgres", "DROP ROLE IF EXISTS rs_app_role")


@pytest.mark.django_db(transaction=True)
def test_gzip_and_none_compression_write_a_plain_restorable_dump(rich_database, make_pg_database, tmp_path):
    policy = rich_database.policy
    policy.compression = "gzip"
    policy.save()
    run = backup_inline(rich_database)
    assert run.status == Status.SUCCEEDED, run.error
    artifact = run.artifacts.get(name="full.dump")
    target = make_pg_database("rs_restored")
    pg_restore(fetch_dump(backend_for(artifact.storage), artifact.key, tmp_path / "g.dump"), target)
    assert facts(target)["customers"] == "500"


@pytest.mark.django_db(transaction=True)
def test_progress_is_recorded_on_the_run(rich_database):
    run = backup_inline(rich_database)
    assert run.bytes_dumped > run.size_bytes > 0
    assert run.bytes_uploaded >= run.artifacts.get(name="full.dump.zst").size
    assert run.phase == "done" and run.pg_dump_version.startswith("pg_dump (PostgreSQL) 15")
