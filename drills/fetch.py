"""Fetching what was stored: staging directories that are always removed, and
a run's dump downloaded from the first storage whose copy hashes right."""

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import zstandard
from django.conf import settings

from backups.models import Artifact, BackupRun, Storage
from backups.storage import StorageError, backend_for
from drills.pgrestore import RestoreFailed


class Staging:
    """A private temporary directory for downloaded artifacts, always removed."""

    def __init__(self):
        root = Path(settings.STAGING_DIR)
        root.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="verify-", dir=root))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def read_and_hash(storage: Storage, artifact: Artifact, dest: Path | None) -> tuple[str, int]:
    """Stream an artifact from STORAGE, hashing it; optionally write it (zstd undone) to DEST."""
    digest, size = hashlib.sha256(), 0
    out = open(dest, "wb") if dest else None
    decompressor = zstandard.ZstdDecompressor().decompressobj() if dest and artifact.name.endswith(".zst") else None
    try:
        for chunk in backend_for(storage).read(artifact.key):
            digest.update(chunk)
            size += len(chunk)
            if out:
                out.write(decompressor.decompress(chunk) if decompressor else chunk)
    except zstandard.ZstdError as exc:
        raise StorageError(f"{artifact.name} on storage {storage.name!r} does not decompress: {exc}") from None
    finally:
        if out:
            out.close()
    return digest.hexdigest(), size


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
