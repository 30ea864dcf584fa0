"""Restore drills: the monthly calendar invite, done by the panel.

A drill fetches the latest verified backup (off-site copy first), restores
it with `pg_restore --jobs` into a fresh sandbox of the source's major
version, compares exact row counts with those captured in the dump's own
snapshot, runs the database's smoke SQL, and records each timing; the total
is the drill's RTO.
"""

import logging
import os
import re
import statistics
import time
from datetime import timedelta

import psycopg

from backups.models import BackupRun, PitrSetup
from backups.pgbackrest import PitrError, read_archiver
from backups.pgtools import ConnInfo, connect, one_value
from backups.pipeline import Background
from drills.fetch import Staging, fetch_dump
from drills.models import Drill
from drills.pgrestore import RestoreFailed, count_rows, create_database, pg_restore
from drills.pitr import restore_to_sandbox
from drills.sandboxes import backend as sandbox_backend

log = logging.getLogger("restorable.drill")

EXPECT = re.compile(r"\s*--\s*expect:\s*(?P<value>.*)$", re.IGNORECASE)


class DrillFailed(Exception):
    """The restore worked but the checks did not pass; the message names what differs."""


def source_run_for(drill: Drill) -> BackupRun:
    if drill.source_run is not None:
        return drill.source_run
    run = drill.database.last_good_run()
    if run is None:
        raise RestoreFailed(f"{drill.database} has no verified backup to drill with; back up and verify first.")
    Drill.objects.filter(pk=drill.pk).update(source_run=run)
    return run


def parse_smoke_sql(text: str) -> list[tuple[str, str | None]]:
    """One query per line; an optional trailing `-- expect: VALUE` compares the first column."""
    queries = []
    for line in text.splitlines():
        if not line.strip() or line.strip().startswith("--"):
            continue
        match = EXPECT.search(line)
        query = line[: match.start()] if match else line
        queries.append((query.strip().rstrip(";"), match.group("value").strip() if match else None))
    return queries


def run_smoke(target, text: str) -> list[dict]:
    results = []
    with connect(target, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        for query, expected in parse_smoke_sql(text):
            try:
                row = conn.execute(query).fetchone()
                value = None if row is None else str(row[0])
                ok = expected is None or value == expected
                results.append({"query": query, "value": value, "expected": expected, "ok": ok})
            except psycopg.Error as exc:
                results.append({"query": query, "value": None, "expected": expected, "ok": False,
                                "error": (exc.diag.message_primary or str(exc))[:500]})
    return results


def compare_counts(expected: dict, actual: dict) -> list[dict]:
    mismatches = []
    for table, info in sorted(expected.items()):
        if not info.get("exact"):
            continue  # an estimate cannot be compared exactly
        if actual.get(table) != info["rows"]:
            mismatches.append({"table": table, "expected": info["rows"], "actual": actual.get(table)})
    return mismatches


def run_drill(drill: Drill) -> dict:
    """The body of a drill job (see controlpanel.jobs.run_job)."""
    if drill.details.get("pitr"):
        return run_pitr_drill(drill)

    run = source_run_for(drill)
    database = drill.database
    major = database.server_major
    if not major:
        raise RestoreFailed("The source server's version is unknown; back up once to detect it.")
    started = time.monotonic()
    sandbox_job = Background(sandbox_backend().create, major, job=drill)
    try:
        with Staging() as staging:
            drill.beat(phase="download")
            fetched = fetch_dump(run, staging)
            downloaded = time.monotonic()
            drill.beat(phase="restore", storage=fetched.storage, download_seconds=round(downloaded - started, 3))
            sandbox = sandbox_job.result()
            target = sandbox.conninfo(run.database.dbname)
            create_database(sandbox.conninfo(), target.dbname)
            pg_restore(fetched.path, target, major, jobs=os.cpu_count())
        restored = time.monotonic()
        drill.beat(phase="checks", restore_seconds=round(restored - downloaded, 3))
        actual = count_rows(target, [t for t, info in run.row_counts.items() if info.get("exact")])
        mismatches = compare_counts(run.row_counts, actual)
        smoke = run_smoke(target, database.smoke_sql) if database.smoke_sql.strip() else []
    finally:
        sandbox_job.join()
        if sandbox_job.value is not None:
            sandbox_job.value.remove()
    checked = time.monotonic()
    rto = checked - started
    fields = {
        "phase": "done", "checks_seconds": round(checked - restored, 3), "rto_seconds": round(rto, 3),
        "row_counts_match": not mismatches, "mismatches": mismatches, "smoke_results": smoke,
        "within_budget": rto <= database.rto_budget_seconds,
    }
    drill.beat(**{k: v for k, v in fields.items() if k != "phase"},
               details={**drill.details, "warnings": drill_warnings(drill, rto)})
    problems = [f"{m['table']}: expected {m['expected']} rows, restored {m['actual']}" for m in mismatches]
    problems += [f"smoke query {s['query']!r}: " + (s.get("error") or f"got {s['value']!r}, expected {s['expected']!r}")
                 for s in smoke if not s["ok"]]
    if problems:
        raise DrillFailed("The restored data differs from the backup: " + "; ".join(problems))
    return fields


def drill_warnings(drill: Drill, rto: float) -> list[str]:
    """An RTO over budget, or creeping up against the previous drills."""
    warnings = []
    budget = drill.database.rto_budget_seconds
    if rto > budget:
        warnings.append(f"RTO {rto:.0f} s is over the {budget} s budget.")
    recent = (Drill.objects.filter(database=drill.database, rto_seconds__isnull=False)
              .exclude(pk=drill.pk).order_by("-created").values_list("rto_seconds", flat=True)[:5])
    previous = [seconds for seconds in recent if seconds is not None]  # none is, by the filter: this tells mypy
    if len(previous) >= 3 and rto > 1.25 * statistics.median(previous):
        warnings.append(f"RTO {rto:.1f} s is creeping up: the median of the last {len(previous)} drills "
                        f"was {statistics.median(previous):.1f} s.")
    return warnings


def run_pitr_drill(drill: Drill) -> dict:
    """Restore the pgBackRest repository to a recent point in a sandbox; RTO is
    the whole restore, RPO how far the recovered state is behind the target.

    The target defaults to the last archived WAL segment's time: what a
    disaster right now would leave, since later WAL is not yet off the host.
    """
    setup = PitrSetup.objects.filter(database=drill.database, enabled__isnull=False).first()
    if setup is None:
        raise RestoreFailed(f"PITR is not enabled for {drill.database}.")
    target = drill.pitr_target
    if target is None:
        archived = read_archiver(ConnInfo.of(drill.database)).last_archived_time
        if archived is None:
            raise PitrError("No WAL segment has been archived yet: nothing to drill with.")
        target = archived - timedelta(seconds=1)
        Drill.objects.filter(pk=drill.pk).update(pitr_target=target)
    started = time.monotonic()
    drill.beat(phase="pgbackrest restore")
    # Lives as long as the job may; the reaper leaves it alone while this job runs.
    sandbox, recovered_to = restore_to_sandbox(drill.database.pitr, target, None, keep=False, job=drill)
    try:
        restored = time.monotonic()
        drill.beat(phase="checks", restore_seconds=round(restored - started, 3))
        smoke = run_smoke(sandbox.conninfo(drill.database.dbname), drill.database.smoke_sql) \
            if drill.database.smoke_sql.strip() else []
        heartbeat = restored_heartbeat(sandbox.conninfo(drill.database.dbname))
    finally:
        sandbox.remove()
    rto = time.monotonic() - started
    # With the heartbeat table the RPO is exact to its interval; otherwise the
    # last replayed commit says how far behind the recovered state is.
    last_known = heartbeat or recovered_to
    rpo = (target - last_known).total_seconds() if last_known else None
    drill.details["rpo_from"] = "heartbeat table" if heartbeat else "last replayed commit"
    fields = {"phase": "done", "rto_seconds": round(rto, 3), "rpo_seconds": rpo, "recovered_to": recovered_to,
              "checks_seconds": round(time.monotonic() - restored, 3), "smoke_results": smoke,
              "within_budget": rto <= drill.database.rto_budget_seconds}
    drill.beat(**{k: v for k, v in fields.items() if k != "phase"},
               details={**drill.details, "warnings": drill_warnings(drill, rto)})
    failed = [s for s in smoke if not s["ok"]]
    if failed:
        raise DrillFailed("Smoke SQL failed on the recovered state: " +
                          "; ".join(f"{s['query']!r}: {s.get('error') or s['value']}" for s in failed))
    return fields


def restored_heartbeat(target):
    """The restorable_heartbeat time in a restored database, when the table is there."""
    with connect(target) as conn:
        if one_value(conn.execute("SELECT to_regclass('public.restorable_heartbeat')")) is None:
            return None
        row = conn.execute("SELECT at FROM public.restorable_heartbeat WHERE id = 1").fetchone()
    return row[0] if row else None
