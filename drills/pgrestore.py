"""Restoring into a server: create or drop the target database, pg_restore a
dump into it, count its rows exactly."""

import logging
import os
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from backups.pgtools import ConnInfo, PgError, connect, one_value, tool_for
from controlpanel.cancel import run_tool

log = logging.getLogger("restorable.restore")


class RestoreFailed(Exception):
    """A restore or drill could not be completed; the message says why."""


def create_database(server: ConnInfo, dbname: str, drop_existing: bool = False) -> None:
    with connect(server, dbname="postgres", autocommit=True) as conn:
        if drop_existing:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(dbname)))
        except psycopg.Error as exc:
            raise RestoreFailed(f"Cannot create database {dbname!r}: {exc.diag.message_primary or exc}") from None


def drop_database(server: ConnInfo, dbname: str) -> bool:
    """Best effort, after a failed restore into DBNAME; True when it is gone."""
    try:
        with connect(server, dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        return True
    except (PgError, psycopg.Error) as exc:
        log.warning("could not drop the half-restored database %s: %s", dbname, exc)
        return False


def database_exists(server: ConnInfo, dbname: str) -> bool:
    with connect(server, dbname="postgres") as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None


def restore_args(tables: list[str], schemas: list[str]) -> list[str]:
    """pg_restore selections; 'schema.table' restricts the schema too. Passed as
    separate argv items, never through a shell."""
    args = []
    for schema in schemas:
        args.append(f"--schema={schema}")
    for table in tables:
        schema, _, name = table.rpartition(".")
        if schema and f"--schema={schema}" not in args:
            args.append(f"--schema={schema}")
        args.append(f"--table={name}")
    return args


def pg_restore(dump: Path, target: ConnInfo, major: int, jobs: int | None = None, selection=()) -> None:
    jobs = jobs or os.cpu_count() or 1
    argv = [str(tool_for("pg_restore", major)), "--no-owner", "--no-privileges", "--exit-on-error",
            f"--jobs={jobs}", f"--dbname={target.dbname}", *selection, str(dump)]
    if selection:  # --jobs with --table would still walk the whole archive; one job is enough
        argv = [a for a in argv if not a.startswith("--jobs")]
    result = run_tool(argv, capture_output=True, text=True, env=target.env(), stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        detail = result.stderr.strip().replace(str(dump), "full.dump")[-1500:]
        raise RestoreFailed(f"pg_restore failed (exit {result.returncode}): {detail}")


def count_rows(target: ConnInfo, tables: list[str]) -> dict[str, int | None]:
    """Exact counts of TABLES (already quoted names) in TARGET; None when missing."""
    counts: dict[str, int | None] = {}
    try:
        with connect(target) as conn:
            for table in tables:
                # Resolve the name with to_regclass and count through
                # sql.Identifier: a hostile table name cannot become SQL.
                found = conn.execute(
                    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.oid = to_regclass(%s)", (table,)).fetchone()
                if found is None:
                    counts[table] = None
                    continue
                query = sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(*found))
                counts[table] = one_value(conn.execute(query))
    except PgError as exc:
        raise RestoreFailed(f"Cannot count rows in the restored database: {exc}") from None
    return counts
