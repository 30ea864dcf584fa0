"""Enabling PITR, base backups and WAL health, on top of backups.pgbackrest."""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from backups.models import BaseBackup, Database, PitrSetup
from backups.pgbackrest import PgBackRest, PitrError, discover, earliest_reachable, read_archiver
from backups.pgtools import ConnInfo, PgError, connect
from controlpanel.notify import event

log = logging.getLogger("restorable.pitr")


@dataclass
class Step:
    step: str
    ok: bool
    detail: str


@dataclass
class EnableReport:
    steps: list[Step] = field(default_factory=list)
    postgresql_conf: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)


def setup_for(database: Database, repo_path: str = "", offsite=None, passphrase: str = "",
              verify_tls: bool = True) -> PitrSetup:
    setup, _ = PitrSetup.objects.get_or_create(
        database=database,
        defaults={"stanza": database.name, "repo_path": repo_path or str(settings.DATA_DIR / "pgbackrest-repo")},
    )
    if repo_path:
        setup.repo_path = repo_path
    setup.offsite_storage = offsite or setup.offsite_storage
    if passphrase:
        setup.cipher_passphrase = passphrase
    setup.verify_tls = verify_tls
    setup.save()
    return setup


def enable(setup: PitrSetup) -> EnableReport:
    """Discover, configure, create the stanza and check archiving; each step reported."""
    report = EnableReport()
    engine = PgBackRest(setup)
    if setup.offsite_storage is not None and setup.offsite_storage.lifecycle_days:
        report.steps.append(Step("repository", False, (
            f"Storage {setup.offsite_storage.name!r} has a bucket lifecycle rule, which would expire pgBackRest's "
            "files by age and break the repository: use a storage without one (pgBackRest keeps its own "
            "retention).")))
        return report
    info = ConnInfo.of(setup.database)
    try:
        found = discover(info)
    except PgError as exc:
        report.steps.append(Step("discover", False, str(exc)))
        return report
    setup.data_directory, setup.socket_directory = found["data_directory"], found["socket_directory"]
    setup.save(update_fields=["data_directory", "socket_directory"])
    report.steps.append(Step("discover", True, f"PostgreSQL {found['server_version'] // 10000}, data directory "
                                               f"{found['data_directory']}"))
    engine.write_config()
    report.steps.append(Step("configure", True, f"wrote {engine.config_path}"))
    report.postgresql_conf = engine.postgresql_conf_lines()
    archiver = read_archiver(info)
    if archiver.archive_mode == "off" or engine.archive_command() not in archiver.archive_command:
        detail = (f"archiving is not set up yet (archive_mode = {archiver.archive_mode}, archive_command = "
                  f"{archiver.archive_command!r}): add the postgresql.conf lines below and restart PostgreSQL")
        report.steps.append(Step("archive settings", False, detail))
        setup.status = detail
        setup.save(update_fields=["status"])
        return report
    report.steps.append(Step("archive settings", True, "archive_mode and archive_command point at this stanza"))
    for name, action in (("stanza-create", engine.stanza_create), ("check", engine.check)):
        try:
            action()
        except PitrError as exc:
            report.steps.append(Step(name, False, str(exc)))
            setup.status = str(exc)
            setup.save(update_fields=["status"])
            return report
        report.steps.append(Step(name, True, "ok"))
    setup.enabled, setup.status = timezone.now(), ""
    setup.save(update_fields=["enabled", "status"])
    return report


def run_base_backup(job: BaseBackup) -> dict:
    """The body of a base backup job (see controlpanel.jobs.run_job)."""
    setup = PitrSetup.objects.filter(database=job.database, enabled__isnull=False).first()
    if setup is None:
        raise PitrError(f"PITR is not enabled for {job.database}: run enable_pitr first.")
    engine = PgBackRest(setup)
    job.beat(phase="backup")
    latest = engine.backup(job.kind)
    sync_info(setup, engine)
    return fields_of(latest)


def fields_of(backup: dict) -> dict:
    stamp = backup.get("timestamp", {})
    archive = backup.get("archive", {})
    info = backup.get("info", {})
    return {
        "phase": "done", "label": backup.get("label", ""), "size_bytes": info.get("size"),
        "repo_size_bytes": info.get("repository", {}).get("size"),
        "wal_start": archive.get("start") or "", "wal_stop": archive.get("stop") or "",
        "backup_start": datetime.fromtimestamp(stamp["start"], tz=UTC) if stamp.get("start") else None,
        "backup_stop": datetime.fromtimestamp(stamp["stop"], tz=UTC) if stamp.get("stop") else None,
    }


def sync_info(setup: PitrSetup, engine: PgBackRest | None = None) -> dict:
    info = (engine or PgBackRest(setup)).info()
    PitrSetup.objects.filter(pk=setup.pk).update(info=info)
    return info


@dataclass
class WalHealth:
    ok: bool
    exposure_seconds: float | None
    detail: str
    archiver: dict


def wal_health(setup: PitrSetup, now=None) -> WalHealth:
    """RPO exposure of the WAL layer: time since the last archived segment, and failures."""
    now = now or timezone.now()
    archiver = read_archiver(ConnInfo.of(setup.database))
    PitrSetup.objects.filter(pk=setup.pk).update(archiver=archiver.as_dict(), checked=now)
    exposure = (now - archiver.last_archived_time).total_seconds() if archiver.last_archived_time else None
    budget = setup.database.rpo_budget_seconds
    if archiver.failing:
        detail = (f"WAL archiving is failing: {archiver.failed_count} failures, last {archiver.last_failed_wal} at "
                  f"{archiver.last_failed_time:%Y-%m-%d %H:%M:%S %Z}")
        return WalHealth(False, exposure, detail, archiver.as_dict())
    if exposure is None:
        return WalHealth(False, None, "No WAL segment has been archived yet.", archiver.as_dict())
    if exposure > budget:
        return WalHealth(False, exposure, f"The last WAL segment was archived {exposure:.0f} s ago, over the "
                                          f"{budget} s RPO budget.", archiver.as_dict())
    return WalHealth(True, exposure, f"Last segment {archiver.last_archived_wal} archived {exposure:.0f} s ago.",
                     archiver.as_dict())


@dataclass
class RecoveryWindow:
    """What a point-in-time restore can reach, from the last synced state:
    the end of the oldest base backup to the last archived WAL segment."""

    earliest: datetime | None
    latest: datetime | None

    @property
    def usable(self) -> bool:
        return self.earliest is not None


def recovery_window(setup: PitrSetup) -> RecoveryWindow:
    """From the cached `pgbackrest info` and pg_stat_archiver: no process, no connection."""
    earliest = earliest_reachable(setup.info)
    archived = (setup.archiver or {}).get("last_archived_time")
    latest = parse_datetime(archived) if archived else None
    if earliest and latest and latest < earliest:
        latest = earliest
    return RecoveryWindow(earliest, latest)


def check_archiving() -> int:
    """WAL archiving health of each PITR-enabled database; alert once per episode. How many are unhealthy."""
    unhealthy = 0
    for setup in PitrSetup.objects.filter(enabled__isnull=False).select_related("database"):
        try:
            health = wal_health(setup)
        except PgError as exc:
            event("wal", f"Cannot read WAL archiving state: {exc}", once_key=f"wal-down:{setup.pk}",
                  database=setup.database.name)
            unhealthy += 1
            continue
        if not health.ok:
            unhealthy += 1
            failed = health.archiver.get("last_failed_time") or health.archiver.get("last_archived_time") or "never"
            event("wal", health.detail, once_key=f"wal:{setup.pk}:{failed}", database=setup.database.name)
    return unhealthy


def verify_repositories(setup: PitrSetup) -> bool:
    """`pgbackrest verify` of the repositories, its result kept on the setup; alert when it fails."""
    try:
        output, ok = PgBackRest(setup).verify(), True
    except PitrError as exc:
        output, ok = str(exc), False
        event("verification_failed", f"pgbackrest verify failed: {exc}", database=setup.database.name)
    info = {**setup.info, "verify": {"ok": ok, "output": output[-2000:], "at": timezone.now().isoformat()}}
    PitrSetup.objects.filter(pk=setup.pk).update(info=info)
    return ok


def write_heartbeat(setup: PitrSetup) -> None:
    """Opt-in: upsert the time into restorable_heartbeat, so a PITR drill can tell
    exactly how far the recovered state is behind (and recovery always finds a
    commit after its target)."""
    try:
        with connect(ConnInfo.of(setup.database), autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS restorable_heartbeat "
                         "(id int PRIMARY KEY, at timestamptz NOT NULL)")
            conn.execute("INSERT INTO restorable_heartbeat VALUES (1, clock_timestamp()) "
                         "ON CONFLICT (id) DO UPDATE SET at = excluded.at")
    except PgError as exc:
        log.warning("PITR heartbeat of %s failed: %s", setup.database, exc)
