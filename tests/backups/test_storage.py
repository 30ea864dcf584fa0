"""S3 multipart uploads against moto's server over real HTTP."""

import hashlib
import os

import pytest

from backups.storage import backend_for

MB = 1024 * 1024


def upload(storage, key: str, data: bytes) -> None:
    writer = backend_for(storage).open_writer(key)
    for start in range(0, len(data), 700 * 1024):  # pg_dump-sized chunks, not part-sized
        writer.write(data[start:start + 700 * 1024])
    writer.commit()


@pytest.mark.django_db
def test_multipart_upload_declares_crc32_so_the_server_checks_every_part(s3_storage, s3_client):
    data = os.urandom(12 * MB)
    key = backend_for(s3_storage).key("app", "stamp", "full.dump")
    upload(s3_storage, key, data)

    head = s3_client.head_object(Bucket=s3_storage.bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 2 MB parts
    assert head["ChecksumCRC32"]  # composite: one per part, checked as each arrived
    body = s3_client.get_object(Bucket=s3_storage.bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


@pytest.mark.django_db
def test_storages_set_to_checksums_when_required_send_none(s3_storage, s3_client):
    s3_storage.checksum_when_required = True  # what Cloudflare R2 users set
    s3_storage.save()
    data = os.urandom(11 * MB)
    key = backend_for(s3_storage).key("app", "stamp", "full.dump")
    upload(s3_storage, key, data)

    head = s3_client.head_object(Bucket=s3_storage.bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-3")
    assert "ChecksumCRC32" not in head
    body = s3_client.get_object(Bucket=s3_storage.bucket, Key=key)["Body"].read()
    assert body == data
