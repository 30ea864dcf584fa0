"""Local directories and S3-compatible buckets behind one interface.

Writers are streaming: bytes go out while pg_dump is still running, memory
stays bounded (S3 parts in flight are capped), and a writer that is not
committed leaves nothing that could pass for a backup (local: a `.partial`
file removed on abort; S3: the multipart upload is aborted).
"""

import logging
import os
import posixpath
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from backups.models import Storage

READ_CHUNK = 1024 * 1024


class StorageError(Exception):
    """A storage problem that retrying will not fix (bad keys, missing bucket, disk full)."""


class TransientStorageError(StorageError):
    """A storage problem worth retrying (endpoint down, timeout, throttling)."""

    transient = True


def safe_key(*parts: str) -> str:
    """Join key parts; refuse anything that could escape the storage's prefix."""
    cleaned = []
    for part in parts:
        for segment in str(part).replace("\\", "/").split("/"):
            if segment in ("", "."):
                continue
            if segment == ".." or "\x00" in segment or any(ord(c) < 32 for c in segment):
                raise StorageError(f"Refusing an object key with {segment!r} in it.")
            cleaned.append(segment)
    if not cleaned:
        raise StorageError("Refusing an empty object key.")
    return "/".join(cleaned)


@dataclass
class StoredObject:
    key: str
    size: int


class Writer(ABC):
    """A streaming upload of one object: write() chunks, then commit() or abort().

    abort() after commit() removes the object too: when one storage of a run
    fails, the copies already committed on the others must go as well.
    """

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self) -> int:
        """Make the object visible; returns its size in bytes."""

    @abstractmethod
    def abort(self) -> None: ...


class Backend(ABC):
    """What the pipeline, retention, drills and views use of a storage; LocalBackend and S3Backend implement it."""

    def __init__(self, storage: "Storage"):
        self.storage = storage

    def key(self, *parts: str) -> str:
        return safe_key(self.storage.prefix, *parts) if self.storage.prefix else safe_key(*parts)

    def put_bytes(self, key: str, data: bytes) -> int:
        writer = self.open_writer(key)
        try:
            writer.write(data)
            return writer.commit()
        except BaseException:
            writer.abort()
            raise

    @abstractmethod
    def open_writer(self, key: str, expected_size: int = 0) -> Writer:
        """A streaming writer of KEY; EXPECTED_SIZE (0: unknown) lets S3 size its parts."""

    @abstractmethod
    def read(self, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks; StorageError if it is missing or unreadable."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[StoredObject]:
        """The objects whose key (relative to the storage's prefix) starts with PREFIX."""

    @abstractmethod
    def test(self) -> None:
        """Raise StorageError unless the storage can be written, read and deleted from."""

    @abstractmethod
    def set_lifecycle(self, days: int | None) -> None:
        """Expire objects after DAYS on the storage's side; None: no such rule."""


class LocalBackend(Backend):
    @property
    def root(self) -> Path:
        return Path(self.storage.path)

    def key(self, *parts: str) -> str:
        return safe_key(*parts)  # a local storage's prefix is its directory

    def _path(self, key: str) -> Path:
        path = (self.root / safe_key(key)).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise StorageError(f"Refusing key {key!r}: it leaves {self.root}.")
        return path

    def open_writer(self, key: str, expected_size: int = 0) -> Writer:
        return LocalWriter(self._path(key), self.storage.name)

    def read(self, key: str) -> Iterator[bytes]:
        try:
            with open(self._path(key), "rb") as fh:
                while chunk := fh.read(READ_CHUNK):
                    yield chunk
        except FileNotFoundError:
            raise StorageError(f"Object {key!r} is missing from storage {self.storage.name!r}.") from None
        except OSError as exc:
            raise StorageError(f"Cannot read {key!r} on storage {self.storage.name!r}: {exc.strerror}.") from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        for parent in path.parents:  # tidy empty run directories, never the root
            if parent == self.root.resolve() or not parent.is_relative_to(self.root.resolve()):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def list(self, prefix: str = "") -> list[StoredObject]:
        base = self.root.resolve()
        found: list[StoredObject] = []
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.endswith(".partial"):
                key = path.relative_to(base).as_posix()
                if key.startswith(prefix):
                    found.append(StoredObject(key, path.stat().st_size))
        return found

    def test(self) -> None:
        probe = self._path(".restorable-write-test")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise StorageError(
                f"Directory {self.root} is not writable by the panel's user: {exc.strerror}."
            ) from None

    def set_lifecycle(self, days: int | None) -> None:
        pass  # retention of local storages is done by the panel's pruning


class LocalWriter(Writer):
    def __init__(self, path: Path, storage_name: str):
        self.path, self.storage_name = path, storage_name
        self.partial = path.with_name(path.name + ".partial")
        self.size = 0
        self.committed = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.partial, "wb")
        except OSError as exc:
            raise StorageError(self._explain(exc)) from None

    def _explain(self, exc: OSError) -> str:
        if exc.errno == 28:
            return f"Storage {self.storage_name!r} is full (no space left on device at {self.path.parent})."
        return f"Cannot write to storage {self.storage_name!r} at {self.path.parent}: {exc.strerror}."

    def write(self, data: bytes) -> None:
        try:
            self.fh.write(data)
        except OSError as exc:
            raise StorageError(self._explain(exc)) from None
        self.size += len(data)

    def commit(self) -> int:
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.replace(self.partial, self.path)
            self.committed = True
        except OSError as exc:
            self.abort()
            raise StorageError(self._explain(exc)) from None
        return self.size

    def abort(self) -> None:
        try:
            self.fh.close()
        except OSError:
            pass
        self.partial.unlink(missing_ok=True)
        if self.committed:
            self.path.unlink(missing_ok=True)
            self.committed = False


def explain_s3_error(storage: "Storage", exc: Exception, key: str = "") -> StorageError:
    """A boto3 error as a domain exception with a plain sentence; never the keys."""
    where = f"storage {storage.name!r} (bucket {storage.bucket!r})"
    if isinstance(exc, (EndpointConnectionError, BotoConnectionError, ReadTimeoutError)):
        return TransientStorageError(f"The S3 endpoint of {where} is unreachable: {type(exc).__name__}.")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in ("NoSuchBucket",):
            return StorageError(f"Bucket {storage.bucket!r} does not exist ({where}).")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthorizationHeaderMalformed"):
            return StorageError(f"The access key or secret of {where} is wrong ({code}).")
        if code in ("AccessDenied", "AllAccessDisabled") or status == 403:
            return StorageError(f"Access denied to {where}: the key lacks permission ({code or status}).")
        if code in ("NoSuchKey", "404") or status == 404:
            return StorageError(f"Object {key!r} is missing from {where}.")
        if code in ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable") or status >= 500:
            return TransientStorageError(f"{where} answered {code or status}; it may be overloaded or down.")
        return StorageError(f"{where} refused the request: {code or status}.")
    if isinstance(exc, BotoCoreError):
        return TransientStorageError(f"{where}: {type(exc).__name__}.")
    return StorageError(f"{where}: {type(exc).__name__}.")


class S3Backend(Backend):
    _client: "S3Client | None" = None

    @property
    def client(self) -> "S3Client":
        if self._client is None:
            s = self.storage
            config = Config(
                region_name=s.region or None,
                s3={"addressing_style": "path" if s.path_style else "auto"},
                connect_timeout=10,
                read_timeout=60,
                retries={"max_attempts": 4, "mode": "standard"},
                max_pool_connections=8,
                request_checksum_calculation="when_required" if s.checksum_when_required else "when_supported",
                response_checksum_validation="when_required" if s.checksum_when_required else "when_supported",
            )
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=s.endpoint_url or None,
                aws_access_key_id=s.access_key_id or None,
                aws_secret_access_key=s.secret_access_key or None,
                config=config,
            )
        return self._client

    def _extra(self) -> dict[str, Any]:
        sse = self.storage.server_side_encryption
        return {"ServerSideEncryption": sse} if sse else {}

    def open_writer(self, key: str, expected_size: int = 0) -> Writer:
        # S3 allows 10,000 parts and R2 wants them equal: size the parts up
        # front so that twice the expected size still fits in 5,000 of them.
        part_size = max(self.storage.multipart_chunk_mb * 1024 * 1024, -(-2 * expected_size // 5000))
        return S3Writer(self, key, part_size)

    def read(self, key: str) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.storage.bucket, Key=key)["Body"]
            while chunk := body.read(READ_CHUNK):
                yield chunk
        except (ClientError, BotoCoreError) as exc:
            raise explain_s3_error(self.storage, exc, key) from None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.storage.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise explain_s3_error(self.storage, exc, key) from None

    def list(self, prefix: str = "") -> list[StoredObject]:
        full = posixpath.join(self.storage.prefix, prefix) if self.storage.prefix else prefix
        found: list[StoredObject] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.storage.bucket, Prefix=full):
                found.extend(StoredObject(o["Key"], o["Size"]) for o in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise explain_s3_error(self.storage, exc) from None
        return found

    def test(self) -> None:
        """Credentials and bucket access, by writing, reading and deleting a probe object."""
        key = self.key(".restorable-write-test")
        try:
            self.client.head_bucket(Bucket=self.storage.bucket)
            self.client.put_object(Bucket=self.storage.bucket, Key=key, Body=b"ok", **self._extra())
            self.client.get_object(Bucket=self.storage.bucket, Key=key)["Body"].read()
            self.client.delete_object(Bucket=self.storage.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                raise StorageError(
                    f"Bucket {self.storage.bucket!r} does not exist (storage {self.storage.name!r})."
                ) from None
            if exc.response.get("Error", {}).get("Code") == "403":
                raise StorageError(
                    f"Access denied to bucket {self.storage.bucket!r}: the keys are wrong or lack permission "
                    f"(storage {self.storage.name!r})."
                ) from None
            raise explain_s3_error(self.storage, exc, key) from None
        except BotoCoreError as exc:
            raise explain_s3_error(self.storage, exc, key) from None

    def set_lifecycle(self, days: int | None) -> None:
        """A bucket rule expiring objects under our prefix (and stale multipart
        uploads); None removes our rule. Other rules of the bucket are kept."""
        rule_id = f"restorable-expire-{self.storage.name}"
        try:
            try:
                current = self.client.get_bucket_lifecycle_configuration(Bucket=self.storage.bucket)["Rules"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                    raise
                current = []
            rules = [r for r in current if r.get("ID") != rule_id]
            if days:
                rules.append({
                    "ID": rule_id,
                    "Status": "Enabled",
                    "Filter": {"Prefix": (self.storage.prefix.rstrip("/") + "/") if self.storage.prefix else ""},
                    "Expiration": {"Days": days},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
                })
            if rules == current:
                return
            if rules:
                self.client.put_bucket_lifecycle_configuration(
                    Bucket=self.storage.bucket, LifecycleConfiguration={"Rules": rules})
            else:  # S3 refuses an empty rule list
                self.client.delete_bucket_lifecycle(Bucket=self.storage.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise explain_s3_error(self.storage, exc) from None


class S3Writer(Writer):
    """Multipart upload with equal-sized parts (R2 requires them), at most
    `max_in_flight` parts in memory, uploaded on threads while the dump goes on."""

    max_in_flight = 2

    def __init__(self, backend: S3Backend, key: str, part_size: int):
        self.backend, self.key, self.part_size = backend, key, part_size
        self.buffer = bytearray()
        self.size = 0
        self.upload_id: str | None = None
        self.parts: list[dict] = []
        self.futures: list[Future[dict]] = []
        self.slots = threading.BoundedSemaphore(self.max_in_flight)
        self.pool: ThreadPoolExecutor | None = None
        self.failed: Exception | None = None
        self.committed = False

    @property
    def bucket(self) -> str:
        return self.backend.storage.bucket

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.backend.client, method)(Bucket=self.bucket, Key=self.key, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise explain_s3_error(self.backend.storage, exc, self.key) from None

    def write(self, data: bytes) -> None:
        self.buffer += data
        self.size += len(data)
        while len(self.buffer) >= self.part_size:
            self._send_part(self.part_size)

    def _send_part(self, length: int) -> None:
        if self.failed:
            raise self.failed
        if self.upload_id is None:
            self.upload_id = self._call("create_multipart_upload", **self.backend._extra(),
                                        **self._checksum_algorithm())["UploadId"]
            self.pool = ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="s3-part")
        # Back-pressure before copying: never more than max_in_flight parts
        # in memory besides the buffer being filled.
        self.slots.acquire()
        with memoryview(self.buffer) as view:
            part = bytes(view[:length])
        del self.buffer[:length]
        number = len(self.futures) + 1
        assert self.pool is not None  # created above with the multipart upload
        self.futures.append(self.pool.submit(self._upload_part, number, part))

    def _checksum_algorithm(self) -> dict:
        """CRC32 per part, declared up front, as boto3's own transfer manager does.

        botocore sends a CRC32 with every part anyway ("when_supported"); declaring
        it makes the server check each part and keep a composite checksum, and
        the completion then needs no pass over the whole object. Storages set to
        "when_required" (R2) send no checksum at all.
        """
        return {} if self.backend.storage.checksum_when_required else {"ChecksumAlgorithm": "CRC32"}

    def _upload_part(self, number: int, data: bytes) -> dict:
        try:
            result = self._call("upload_part", UploadId=self.upload_id, PartNumber=number, Body=data)
            part = {"PartNumber": number, "ETag": result["ETag"]}
            if "ChecksumCRC32" in result:
                part["ChecksumCRC32"] = result["ChecksumCRC32"]
            return part
        except Exception as exc:
            self.failed = exc
            raise
        finally:
            self.slots.release()

    def commit(self) -> int:
        try:
            if self.upload_id is None:
                self._call("put_object", Body=bytes(self.buffer), **self.backend._extra())
                self.committed = True
                return self.size
            if self.buffer:
                self._send_part(len(self.buffer))
            parts = [future.result() for future in self.futures]
            self._call("complete_multipart_upload", UploadId=self.upload_id, MultipartUpload={"Parts": parts})
            self.upload_id = None
            self.committed = True
            assert self.pool is not None  # a multipart upload was started, and its pool with it
            self.pool.shutdown()
            return self.size
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self.buffer.clear()
        if self.pool:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.upload_id:
            try:
                self.backend.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            except (ClientError, BotoCoreError):
                pass  # the bucket's lifecycle rule aborts stale uploads too
            self.upload_id = None
        if self.committed:
            try:
                self.backend.delete(self.key)
            except StorageError:
                pass  # logged by the caller's cleanup; retention removes orphans
            self.committed = False


def backend_for(storage: "Storage") -> Backend:
    return LocalBackend(storage) if storage.kind == "local" else S3Backend(storage)


def remove_partial(storage: "Storage", database_name: str, stamp: str) -> int:
    """Delete every object of one run's directory and abort its open multipart
    uploads (a worker killed mid-upload cannot abort them itself)."""
    backend = backend_for(storage)
    directory = backend.key(database_name, stamp) + "/"
    removed = 0
    try:
        if isinstance(backend, LocalBackend):
            run_dir = backend._path(directory.rstrip("/"))
            files = sorted(p for p in run_dir.rglob("*") if p.is_file()) if run_dir.is_dir() else []
            for path in files:  # delete() also tidies the directories it empties
                backend.delete(path.relative_to(backend.root.resolve()).as_posix())
            return len(files)
        assert isinstance(backend, S3Backend)  # backend_for() makes the one or the other
        listed = directory.removeprefix(storage.prefix.rstrip("/") + "/") if storage.prefix else directory
        for obj in backend.list(listed):
            backend.delete(obj.key)
            removed += 1
        client = backend.client
        uploads = client.list_multipart_uploads(Bucket=storage.bucket, Prefix=directory).get("Uploads", [])
        for upload in uploads:
            client.abort_multipart_upload(Bucket=storage.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            removed += 1
    except (StorageError, ClientError, BotoCoreError) as exc:
        logging.getLogger("restorable.storage").warning("could not clean up run %s on %s: %s", stamp, storage, exc)
    return removed
