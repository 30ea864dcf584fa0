"""What drills and restores share: fetch a dump from storage (checking its
hash on the way) and pg_restore it into a server."""

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from backups.models import Artifact, BackupRun, Storage
from backups.pgtools import ConnInfo, PgError, connect, tool_for
from backups.storage import StorageError
from controlpanel.jobs import run_tool
from drills.verification import read_and_hash

log = logging.getLogger("restorable.restore")


class RestoreFailed(Exception):
    """A restore or drill could not be completed; the message says why."""


@dataclass
class FetchedDump:
    path: Path
    storage: Storage
    artifact: Artifact


def dump_artifacts(run: BackupRun, prefer_offsite: bool = True) -> list[Artifact]:
    """The run's dump on each storage, off-site first, known-bad copies last."""
    artifacts = [a for a in run.artifacts.filter(deleted_at__isnull=True).select_related("storage")
                 if a.name.startswith("full.dump")]
    primary = run.database.primary_storage_id

    def rank(artifact):
        return (artifact.last_check_ok is False, (artifact.storage_id == primary) == prefer_offsite,
                artifact.storage.name)

    return sorted(artifacts, key=rank)


def fetch_dump(run: BackupRun, staging: Path, prefer_offsite: bool = True) -> FetchedDump:
    """Download the dump to STAGING, trying each storage until a copy's hash matches."""
    problems = []
    for artifact in dump_artifacts(run, prefer_offsite):
        dest = staging / "full.dump"
        try:
            actual, size = read_and_hash(artifact.storage, artifact, dest)
        except StorageError as exc:
            problems.append(str(exc))
            continue
        if actual == artifact.sha256 and size == artifact.size:
            return FetchedDump(dest, artifact.storage, artifact)
        problems.append(f"storage {artifact.storage.name!r}: the dump's sha256 does not match the manifest")
    if not problems:
        raise RestoreFailed(f"Backup #{run.pk} has no stored dump left (pruned?).")
    raise RestoreFailed(f"No intact copy of backup #{run.pk}'s dump: " + "; ".join(problems))


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
    counts = {}
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
                counts[table] = conn.execute(query).fetchone()[0]
    except PgError as exc:
        raise RestoreFailed(f"Cannot count rows in the restored database: {exc}") from None
    return counts
