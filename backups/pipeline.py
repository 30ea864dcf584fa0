"""The streaming logical backup.

    pg_export_snapshot() --> exact row counts in that snapshot (a thread)
    pg_dump --snapshot --> zstd --> SHA-256 --> every storage at once

One pass over the data: compression, hashing and uploads happen while pg_dump
runs, with memory bounded by the S3 parts in flight. A run that fails removes
what it had stored, so nothing partial passes for a backup.
"""

import contextlib
import fcntl
import hashlib
import json
import logging
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import psycopg
import zstandard
from django.conf import settings
from django.utils import timezone
from psycopg import sql

from backups.models import Artifact, BackupPolicy, BackupRun, Storage
from backups.pgtools import (
    ConnectionProblem,
    ConnInfo,
    connect,
    explain_connection_error,
    one_value,
    tool_for,
    tool_version,
)
from backups.storage import Backend, StorageError, Writer, backend_for
from controlpanel.cancel import cancellable, on_cancel
from controlpanel.jobs import with_metadata_retries

log = logging.getLogger("restorable.backup")

CHUNK = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
MANIFEST_FORMAT = "restorable-backup/1"


class BackupFailed(Exception):
    """The dump or its storage failed; the message says why in plain words."""


@dataclass
class StoredFile:
    name: str
    size: int
    sha256: str
    keys: dict = field(default_factory=dict)  # storage pk -> key
    compression: str = ""


class Compressor(Protocol):
    """A zstandard compressobj(): what pump() needs of a stream compressor."""

    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class Tee:
    """Fans one byte stream out to a writer per storage, hashing as it goes."""

    def __init__(self, writers: list[tuple[Storage, str, Writer]]):
        self.writers = writers
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.size += len(data)
        for _storage, _key, writer in self.writers:
            writer.write(data)

    def commit(self) -> None:
        for _storage, _key, writer in self.writers:
            writer.commit()

    def abort(self) -> None:
        for _storage, _key, writer in self.writers:
            writer.abort()


@dataclass
class Compression:
    """How full.dump is compressed: pg_dump's own method, or a zstd stream around -Z0."""

    pg_dump_flag: str
    outer: str = ""  # "zstd" when Restorable compresses the stream itself
    level: int = 3

    @property
    def label(self) -> str:
        return f"zstd-stream:{self.level}" if self.outer else self.pg_dump_flag.removeprefix("--compress=")

    @property
    def file_name(self) -> str:
        return "full.dump.zst" if self.outer else "full.dump"


def choose_compression(policy: BackupPolicy | None, pg_dump_major: int) -> Compression:
    """The best the pg_dump offers; measured in bench/backup.py.

    PostgreSQL 16+ pg_dump compresses with zstd itself. Older ones only have
    gzip, 3-5x slower at -Z9 than zstd for a similar size, so the dump is taken
    uncompressed and zstd-compressed in this process on another core.
    """
    method = policy.compression if policy else BackupPolicy.Compression.AUTO
    level = policy.compression_level if policy and policy.compression_level is not None else None
    if method == BackupPolicy.Compression.NONE:
        return Compression("--compress=0")
    if method == BackupPolicy.Compression.GZIP:
        return Compression(f"--compress={level if level is not None else 6}")
    if pg_dump_major >= 16:
        return Compression(f"--compress=zstd:{level if level is not None else 3}", level=level or 3)
    # Level 1: measured faster than 3 and no larger on pgbench + text data.
    return Compression("--compress=0", outer="zstd", level=level if level is not None else 1)


class Background(threading.Thread):
    """Calls fn(*args, **kwargs) on a thread; result() joins and re-raises."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any):
        super().__init__(daemon=True, name=f"background-{getattr(fn, '__name__', 'call')}")
        self.call = (fn, args, kwargs)
        self.value: Any = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        fn, args, kwargs = self.call
        try:
            self.value = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller by result()
            self.error = exc

    def result(self) -> Any:
        self.join()
        if self.error is not None:
            raise self.error
        return self.value


class Progress:
    """Writes bytes dumped and stored to the run about once a second (run=None: not at all)."""

    def __init__(self, run: BackupRun | None, every: float = 1.0):
        self.run, self.every = run, every
        self.base_dumped = self.base_stored = 0
        self.last = 0.0

    def update(self, dumped: int, stored: int, force: bool = False) -> None:
        now = time.monotonic()
        if self.run is not None and (force or now - self.last >= self.every):
            self.last = now
            self.run.beat(bytes_dumped=self.base_dumped + dumped, bytes_uploaded=self.base_stored + stored)

    def file_done(self, dumped: int, stored: int) -> None:
        self.base_dumped += dumped
        self.base_stored += stored
        self.update(0, 0, force=True)


class RowCounter(threading.Thread):
    """Counts every user table inside the exported snapshot while pg_dump runs.

    Tables whose planner estimate exceeds the limit get the estimate, flagged
    as such, so a huge table cannot stretch the backup by a full scan.
    """

    def __init__(self, conn: psycopg.Connection, exact_limit: int):
        super().__init__(name="row-counter", daemon=True)
        self.conn, self.exact_limit = conn, exact_limit
        self.counts: dict[str, dict] = {}
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            tables = self.conn.execute(
                """SELECT format('%I.%I', n.nspname, c.relname), n.nspname, c.relname, c.reltuples::bigint
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE c.relkind = 'r' AND c.relpersistence <> 't'
                     AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                     AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
                     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                     AND d.objid = c.oid AND d.deptype = 'e')
                   ORDER BY 1"""
            ).fetchall()
            for name, schema, table, estimate in tables:
                if self.exact_limit and estimate > self.exact_limit:
                    self.counts[name] = {"rows": int(estimate), "exact": False}
                else:
                    query = sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(schema, table))
                    rows = one_value(self.conn.execute(query))
                    self.counts[name] = {"rows": rows, "exact": True}
        except Exception as exc:  # reported by result()
            self.error = exc

    def result(self) -> dict[str, dict]:
        self.join()
        if self.error:
            raise BackupFailed(f"Counting rows in the dump's snapshot failed: {self.error}")
        return self.counts


def widen_pipe(pipe: IO[bytes]) -> None:
    """A 1 MB pipe instead of 64 KB: pg_dump blocks less and we wake up less."""
    try:
        fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, CHUNK)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size for an unprivileged user: keep the default


def stream_command(argv: list[str], env: dict[str, str], tee: Tee, progress: Progress, what: str,
                   info: ConnInfo, compressor: Compressor | None = None) -> int:
    """Run ARGV and stream its stdout into TEE; returns the raw bytes read.
    A cancel of the job stops the process (see controlpanel.cancel)."""
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, env=env, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # a cancel signals its whole group
        assert proc.stdout is not None  # stdout=PIPE above
        widen_pipe(proc.stdout)
        try:
            with cancellable(proc):
                raw = pump(proc.stdout, tee, progress, compressor)
            returncode = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        stderr.seek(0)
        errors = stderr.read().decode("utf-8", "replace").strip()
    if returncode != 0:
        raise BackupFailed(explain_tool_failure(what, returncode, errors, info))
    if raw == 0:
        raise BackupFailed(f"{what} exited successfully but wrote nothing; refusing an empty backup.")
    if errors:
        log.warning("%s wrote to stderr: %s", what, errors[:2000])
    return raw


def pump(output: IO[bytes], tee: Tee, progress: Progress, compressor: Compressor | None = None) -> int:
    """Read the process's output to the end into TEE; returns the raw bytes read."""
    raw = 0
    while chunk := output.read(CHUNK):
        raw += len(chunk)
        data = compressor.compress(chunk) if compressor else chunk
        if data:
            tee.write(data)
        progress.update(raw, tee.size)
    if compressor:
        tee.write(compressor.flush())
    return raw


def explain_tool_failure(what: str, returncode: int, errors: str, info: ConnInfo) -> str:
    if returncode < 0:
        return f"{what} was killed by signal {-returncode} before it finished; nothing was kept."
    if "connection to server" in errors or "could not connect" in errors:
        return f"{what} could not connect: {explain_connection_error(info, Exception(errors))}"
    lines = [line for line in errors.splitlines() if line.strip()]
    detail = "; ".join(lines[-3:]) if lines else "no message"
    return f"{what} failed (exit {returncode}): {detail[:1500]}"


class Backup:
    """One backup run of one database: the steps, and cleanup on failure."""

    def __init__(self, run: BackupRun):
        self.run = run
        self.database = run.database
        self.info = ConnInfo.of(self.database)
        self.targets = [(storage, backend_for(storage)) for storage in self.database.storages()]
        self.stored: list[StoredFile] = []
        self.progress = Progress(run)

    def key(self, backend: Backend, name: str) -> str:
        return backend.key(self.database.name, self.run.stamp, name)

    def open_tee(self, name: str, expected_size: int = 0) -> Tee:
        writers: list[tuple[Storage, str, Writer]] = []
        try:
            for storage, backend in self.targets:
                key = self.key(backend, name)
                writers.append((storage, key, backend.open_writer(key, expected_size)))
        except BaseException:
            Tee(writers).abort()
            raise
        return Tee(writers)

    def store_stream(self, name: str, argv: list[str], env: dict[str, str], what: str,
                     compressor: Compressor | None = None,
                     compression: str = "", expected_size: int = 0, progress: "Progress | None" = None) -> StoredFile:
        progress = progress or self.progress
        tee = self.open_tee(name, expected_size)
        try:
            raw = stream_command(argv, env, tee, progress, what, self.info, compressor)
            tee.commit()
        except BaseException:
            tee.abort()
            raise
        progress.file_done(raw, tee.size)
        return self._record(name, tee, compression)

    def store_bytes(self, name: str, data: bytes) -> StoredFile:
        tee = self.open_tee(name)
        try:
            tee.write(data)
            tee.commit()
        except BaseException:
            tee.abort()
            raise
        return self._record(name, tee, "")

    def _record(self, name: str, tee: Tee, compression: str) -> StoredFile:
        stored = StoredFile(name, tee.size, tee.digest.hexdigest(), compression=compression,
                            keys={storage.pk: key for storage, key, _ in tee.writers})
        self.stored.append(stored)
        return stored

    def remove_stored(self) -> None:
        """Best effort: a failed run leaves no objects behind."""
        for stored in self.stored:
            for storage, backend in self.targets:
                key = stored.keys.get(storage.pk)
                try:
                    if key:
                        backend.delete(key)
                except StorageError as exc:
                    log.warning("could not remove %s from %s after a failed run: %s", key, storage, exc)

    def execute(self) -> dict:
        try:
            return self._execute()
        except BaseException:
            self.remove_stored()
            raise

    def _execute(self) -> dict:
        run, database = self.run, self.database
        with connect(self.info) as conn, contextlib.ExitStack() as stack:
            conn.read_only = True
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            version_num = int(one_value(conn.execute("SHOW server_version_num")))
            server_version = one_value(conn.execute("SHOW server_version"))
            if database.server_version != version_num:
                type(database).objects.filter(pk=database.pk).update(server_version=version_num)
            pg_dump = tool_for("pg_dump", version_num // 10000)
            pg_dump_version = tool_version(pg_dump)
            pg_dump_major = int(pg_dump.parent.parent.name)
            compression = choose_compression(getattr(database, "policy", None), pg_dump_major)
            run.beat(phase="snapshot", server_version=server_version, pg_dump_version=pg_dump_version,
                     compression=compression.label)
            database_size = one_value(conn.execute("SELECT pg_database_size(current_database())"))
            run.beat(details={**run.details, "database_size": database_size})
            # The transaction that exported the snapshot must stay open until
            # pg_dump has started on it, and the counts read from it: hold it.
            # From here on only the counting thread uses this connection.
            snapshot = one_value(conn.execute("SELECT pg_export_snapshot()"))
            counter = RowCounter(conn, settings.ROW_COUNT_EXACT_LIMIT)
            stack.enter_context(on_cancel(conn.cancel_safe))  # a cancel stops the counting query too
            counter.start()
            env = self.info.env()
            common = [str(pg_dump), f"--snapshot={snapshot}", "--no-password"]
            run.beat(phase="dump")
            # The schema is small: dump it beside the data instead of before it.
            schema = Background(self.store_stream, "schema.sql",
                                [*common, "--schema-only", "--no-owner", "--no-privileges"], env,
                                "pg_dump (schema)", progress=Progress(None))
            # Single-threaded zstd keeps pace with pg_dump (bench/backup.py) and
            # saves the ~60 MB of buffers the multi-threaded compressor holds.
            compressor = (zstandard.ZstdCompressor(level=compression.level, threads=0).compressobj()
                          if compression.outer else None)
            try:
                self.store_stream(compression.file_name, [*common, "--format=custom", compression.pg_dump_flag],
                                  env, "pg_dump", compressor=compressor, compression=compression.label,
                                  expected_size=database_size)
            except BaseException:
                schema.join()  # the data dump's error is the one to report
                raise
            schema.result()
            run.beat(phase="row counts")
            row_counts = counter.result()
        if database.include_globals:
            run.beat(phase="globals")
            pg_dumpall = pg_dump.parent / "pg_dumpall"
            self.store_stream("globals.sql", [str(pg_dumpall), "--globals-only", "--no-role-passwords",
                                              "--no-password", f"--database={self.info.dbname}"],
                              env, "pg_dumpall (globals)")
        run.beat(phase="manifest")
        manifest = self.manifest(server_version, version_num, pg_dump_version, compression, row_counts)
        self.store_bytes("manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
        self.save_artifacts()
        size = sum(s.size for s in self.stored)
        return {"phase": "done", "size_bytes": size, "row_counts": row_counts}

    def manifest(self, server_version: str, version_num: int, pg_dump_version: str, compression: Compression,
                 row_counts: dict[str, dict]) -> dict:
        dump = next(s for s in self.stored if s.name.startswith("full.dump"))
        restore = ["pg_restore --list full.dump > /dev/null",
                   "createdb NEW_NAME && pg_restore --jobs 4 --no-owner --dbname NEW_NAME full.dump"]
        if compression.outer:
            restore.insert(0, "zstd -d full.dump.zst -o full.dump")
        return {
            "format": MANIFEST_FORMAT,
            "database": self.database.name,
            "dbname": self.info.dbname,
            "server_version": server_version,
            "server_version_num": version_num,
            "pg_dump_version": pg_dump_version,
            "started": self.run.started.isoformat() if self.run.started else None,
            "finished": timezone.now().isoformat(),
            "run_id": self.run.pk,
            "compression": compression.label,
            "dump_file": dump.name,
            "files": [{"name": s.name, "size": s.size, "sha256": s.sha256, "compression": s.compression}
                      for s in self.stored],
            "row_counts": row_counts,
            "restore": restore,
        }

    def save_artifacts(self) -> None:
        """Record every stored file; a complete backup is not thrown away for a
        metadata database that is away for a moment (retried; the unique
        constraint makes a repeated insert harmless)."""
        artifacts = [
            Artifact(run=self.run, storage=storage, name=s.name, key=s.keys[storage.pk], size=s.size, sha256=s.sha256)
            for s in self.stored
            for storage, _backend in self.targets
        ]
        with_metadata_retries(lambda: Artifact.objects.bulk_create(artifacts, ignore_conflicts=True),
                              f"record the files of {self.run}")


def run_backup(run: BackupRun) -> dict:
    """The body of a backup job (see controlpanel.jobs.run_job)."""
    if not run.stamp:
        stamp = (run.started or timezone.now()).strftime("%Y-%m-%dT%H-%M-%SZ")
        if BackupRun.objects.filter(database=run.database_id, stamp=stamp).exists():
            stamp = f"{stamp}-{run.pk}"  # two runs in one second must not share keys
        run.stamp = stamp
        BackupRun.objects.filter(pk=run.pk).update(stamp=stamp)
    try:
        return Backup(run).execute()
    except ConnectionProblem as exc:
        raise BackupFailed(str(exc)) from None
