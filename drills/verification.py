"""Verification: a backup is proven readable from the copies actually stored.

1. every artifact re-read from every storage, SHA-256 recomputed while
   streaming and compared with the recorded value (S3: a real download);
2. `pg_restore --list` and a full read (`pg_restore -f /dev/null`) of the dump,
   so every byte decompresses;
3. `schema.sql` replayed into a sandbox of the source's major version with
   ON_ERROR_STOP.
The dump and schema used for 2 and 3 are written to staging during the same
read that checks their hash, from the off-site copy when there is one (the
playbook: verify from what a disaster would leave you).
"""

import logging
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.utils import timezone

from backups.models import Artifact, BackupRun, Storage
from backups.pgtools import PgError, tool_for
from backups.pipeline import Background
from backups.storage import StorageError
from controlpanel.cancel import run_tool
from controlpanel.jobs import Status
from drills.fetch import Staging, read_and_hash
from drills.models import Verification
from drills.sandboxes import backend as sandbox_backend

log = logging.getLogger("restorable.verify")


DEEP_CHECKED = ("schema.sql", "full.dump", "full.dump.zst")


class VerificationFailed(Exception):
    """One or more checks failed; the message lists them."""


@dataclass
class Check:
    storage: str
    artifact: str
    check: str
    ok: bool
    detail: str
    seconds: float


class Verifier:
    def __init__(self, verification: Verification):
        self.verification = verification
        self.run: BackupRun = verification.run
        self.checks: list[Check] = []

    def record(self, storage: str, artifact: str, check: str, ok: bool, detail: str, started: float) -> Check:
        entry = Check(storage, artifact, check, ok, detail, round(time.monotonic() - started, 3))
        self.checks.append(entry)
        self.verification.beat(checks=[asdict(c) for c in self.checks])
        return entry

    def source_storage(self, artifacts: list[Artifact]) -> Storage:
        """Off-site first: verify from what would be left after losing the primary."""
        storages = {a.storage_id: a.storage for a in artifacts}
        primary = self.run.database.primary_storage_id
        ordered = sorted(storages.values(), key=lambda s: (s.pk == primary, s.name))
        return ordered[0]

    def execute(self) -> dict:
        artifacts = list(self.run.artifacts.filter(deleted_at__isnull=True).select_related("storage"))
        if not artifacts:
            raise VerificationFailed(f"Run #{self.run.pk} has no stored artifacts to verify.")
        # The sandbox starts while the copies are read: it needs nothing from them.
        sandbox = None if self.verification.checksums_only else Background(
            sandbox_backend().create, self.server_major(), job=self.verification)
        try:
            with Staging() as staging:
                source = self.source_storage(artifacts)
                copies = self.check_checksums(artifacts, source, staging)
                if sandbox is not None:
                    self.fetch_missing_copies(artifacts, copies, staging)
                    self.check_dump(copies, source)
                    self.check_schema(copies, source, sandbox)
        finally:
            if sandbox is not None:
                sandbox.join()
                if sandbox.value is not None:
                    sandbox.value.remove()
        return self.conclude(artifacts)

    def check_checksums(self, artifacts: list[Artifact], source: Storage, staging: Path) -> dict[str, tuple]:
        """Hash every copy; the source storage's dump and schema land in staging on the way."""
        self.verification.beat(phase="checksums")
        wanted = set() if self.verification.checksums_only else set(DEEP_CHECKED)
        copies = {}
        for artifact in artifacts:
            dest = staging / artifact.name.removesuffix(".zst") if (
                artifact.storage_id == source.pk and artifact.name in wanted) else None
            if self.check_one(artifact, dest) and dest:
                copies[dest.name] = (dest, artifact.storage.name)
        return copies

    def check_one(self, artifact: Artifact, dest: Path | None) -> bool:
        started = time.monotonic()
        try:
            actual, size = read_and_hash(artifact.storage, artifact, dest)
        except StorageError as exc:
            self.record(artifact.storage.name, artifact.name, "sha256", False, str(exc), started)
            self.mark(artifact, False, str(exc))
            return False
        ok = actual == artifact.sha256 and size == artifact.size
        detail = (f"sha256 {actual[:16]}…, {size} bytes, matches the manifest" if ok else
                  f"storage {artifact.storage.name!r}, key {artifact.key!r}: expected sha256 {artifact.sha256} "
                  f"({artifact.size} bytes), got {actual} ({size} bytes)")
        self.record(artifact.storage.name, artifact.name, "sha256", ok, detail, started)
        self.mark(artifact, ok, "" if ok else detail)
        return ok

    def fetch_missing_copies(self, artifacts: list[Artifact], copies: dict, staging: Path) -> None:
        """When the preferred copy is damaged, open an intact one from another storage."""
        intact = [a for a in artifacts if a.name in DEEP_CHECKED and a.storage_id in self.intact_storages(a.name)]
        for artifact in intact:
            name = artifact.name.removesuffix(".zst")
            if name in copies:
                continue
            dest = staging / name
            actual, size = read_and_hash(artifact.storage, artifact, dest)
            if actual == artifact.sha256:
                copies[name] = (dest, artifact.storage.name)

    def intact_storages(self, artifact_name: str) -> set[int]:
        ok_names = {c.storage for c in self.checks if c.artifact == artifact_name and c.check == "sha256" and c.ok}
        return set(Storage.objects.filter(name__in=ok_names).values_list("pk", flat=True))

    def mark(self, artifact: Artifact, ok: bool, detail: str) -> None:
        fields = {"last_check_ok": ok, "last_check_detail": detail[:2000]}
        if ok:
            fields["verified_at"] = timezone.now()
        Artifact.objects.filter(pk=artifact.pk).update(**fields)

    def server_major(self) -> int:
        major = self.run.database.server_major
        if not major:
            raise VerificationFailed("The source server's version is unknown; back up once to detect it.")
        return major

    def check_dump(self, copies: dict[str, tuple], source: Storage) -> None:
        dump, origin = copies.get("full.dump", (None, source.name))
        if dump is None:
            started = time.monotonic()
            self.record(source.name, "full.dump", "pg_restore", False,
                        "No intact copy of the dump could be read, so it was not opened.", started)
            return
        self.verification.beat(phase="pg_restore")
        pg_restore = tool_for("pg_restore", self.server_major())
        for check, argv in (("pg_restore --list", [str(pg_restore), "--list", str(dump)]),
                            ("pg_restore full read", [str(pg_restore), "--file=/dev/null", str(dump)])):
            started = time.monotonic()
            result = run_tool(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if result.returncode == 0:
                entries = sum(1 for line in result.stdout.splitlines() if line and not line.startswith(";"))
                detail = (f"{entries} archive entries" if check.endswith("--list")
                          else "every byte read and decompressed")
                self.record(origin, "full.dump", check, True, detail, started)
            else:
                self.record(origin, "full.dump", check, False,
                            f"{check} failed: {result.stderr.strip()[-1500:]}", started)

    def check_schema(self, copies: dict[str, tuple], source: Storage, sandbox: "Background") -> None:
        schema, origin = copies.get("schema.sql", (None, source.name))
        started = time.monotonic()
        if schema is None:
            self.record(source.name, "schema.sql", "schema replay", False,
                        "No intact copy of schema.sql could be read, so it was not replayed.", started)
            return
        self.verification.beat(phase="schema replay")
        major = self.server_major()
        psql = tool_for("psql", major)
        info = sandbox.result().conninfo()
        result = run_tool(
            [str(psql), "--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(schema)],
            capture_output=True, text=True, env=info.env(), stdin=subprocess.DEVNULL,
        )
        if result.returncode == 0:
            self.record(origin, "schema.sql", "schema replay", True,
                        f"replayed into a PostgreSQL {major} sandbox", started)
        else:
            where = result.stderr.strip().replace(str(schema), "schema.sql")[-1500:]
            self.record(origin, "schema.sql", "schema replay", False, f"schema.sql does not replay: {where}",
                        started)

    def conclude(self, artifacts) -> dict:
        failed = [c for c in self.checks if not c.ok]
        passed = not failed
        verified = BackupRun.Verified.PASSED if passed else BackupRun.Verified.FAILED
        if self.verification.checksums_only and passed and self.run.verified == BackupRun.Verified.FAILED:
            # Checksums alone do not clear a failed full verification, but they
            # do clear a failed re-check (say, a storage that was unreachable):
            # what counts is how the last full verification ended.
            last_full = (self.run.verifications.filter(checksums_only=False,
                                                       status__in=(Status.SUCCEEDED, Status.FAILED))
                         .order_by("-created").first())
            if last_full is None or last_full.status != Status.SUCCEEDED:
                verified = BackupRun.Verified.FAILED
        BackupRun.objects.filter(pk=self.run.pk).update(verified=verified)
        if failed:
            raise VerificationFailed("; ".join(f"[{c.storage}] {c.artifact} {c.check}: {c.detail}" for c in failed))
        return {"phase": "done", "checks": [asdict(c) for c in self.checks]}


def run_verification(verification: Verification) -> dict:
    """The body of a verification job (see controlpanel.jobs.run_job)."""
    try:
        return Verifier(verification).execute()
    except VerificationFailed:
        raise
    except (PgError, StorageError) as exc:
        BackupRun.objects.filter(pk=verification.run_id).update(verified=BackupRun.Verified.FAILED)
        raise VerificationFailed(str(exc)) from None
