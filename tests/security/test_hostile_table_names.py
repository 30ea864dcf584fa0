"""Tables named to inject SQL or shell commands are backed up, counted and
drilled like any other, and nothing they spell out runs."""

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from backups.services import create_backup_run
from controlpanel.jobs import Status
from drills.models import Drill
from tests.conftest import PG, psql

pytestmark = pytest.mark.django_db(transaction=True)

PWNED = Path("/tmp/pwned")
HOSTILE_TABLES = {
    'x"; DROP TABLE y; --': 3,
    "$(touch /tmp/pwned)": 5,
    "`touch /tmp/pwned`": 2,
    "x'; DROP TABLE y; --": 7,
    "new\nline": 1,
    'quote"and\'apostrophe': 4,
    "back\\slash": 6,
    "dot.ted": 8,
    "--table=y": 9,
    "-n public": 10,
    "%s%s": 11,
    "таблица": 12,
    "Mixed Case": 13,
}
HOSTILE_SCHEMA = 'evil"; DROP TABLE y; --'


def create_tables(dbname: str) -> None:
    with psycopg.connect(**PG, dbname=dbname, autocommit=True) as conn:
        conn.execute("CREATE TABLE y (id int)")
        conn.execute("INSERT INTO y SELECT generate_series(1, 42)")
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(HOSTILE_SCHEMA)))
        for schema in ("public", HOSTILE_SCHEMA):
            for name, rows in HOSTILE_TABLES.items():
                table = sql.Identifier(schema, name)
                conn.execute(sql.SQL("CREATE TABLE {} (id int, note text)").format(table))
                conn.execute(sql.SQL("INSERT INTO {} SELECT i, {} FROM generate_series(1, {}) i").format(
                    table, sql.Literal(name), sql.Literal(rows)))


def quoted_names(dbname: str) -> dict[str, int]:
    """Each hostile table as the backup names it (format('%I.%I')), with its row count."""
    with psycopg.connect(**PG, dbname=dbname) as conn:
        return {conn.execute("SELECT format('%%I.%%I', %s::text, %s::text)", (schema, name)).fetchone()[0]: rows
                for schema in ("public", HOSTILE_SCHEMA) for name, rows in HOSTILE_TABLES.items()}


def test_hostile_table_names_are_backed_up_counted_and_drilled_without_injection(source_database):
    assert not PWNED.exists(), f"{PWNED} exists before the test; remove it so the test can tell"
    create_tables(source_database.dbname)

    run = create_backup_run(source_database)
    run.execute(inline=True)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.error
    assert run.verified == "passed", run.error
    expected = quoted_names(source_database.dbname)
    counted = {table: info["rows"] for table, info in run.row_counts.items() if table in expected}
    assert counted == expected
    assert all(run.row_counts[t]["exact"] for t in expected)

    drill = (Drill.objects.create(database=source_database)).execute()
    assert drill.status == Status.SUCCEEDED, drill.error
    assert drill.row_counts_match and drill.mismatches == []

    assert not PWNED.exists()
    assert psql(source_database.dbname, "SELECT count(*) FROM y") == "42"
    assert run.row_counts["public.y"] == {"rows": 42, "exact": True}
