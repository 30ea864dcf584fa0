"""Every backup is proven readable from the copies actually stored."""

import json
import subprocess

import pytest
from django.core.management import call_command

from backups.models import Artifact, BackupRun
from backups.services import create_backup_run
from backups.storage import backend_for
from controlpanel.jobs import Status
from drills.models import Verification
from tests.conftest import psql

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backed_up(source_database, s3_storage):
    psql(source_database.dbname, "CREATE TABLE orders (id serial PRIMARY KEY, note text);"
                                 "INSERT INTO orders (note) SELECT 'order ' || i FROM generate_series(1, 3000) i;")
    source_database.offsite_storages.add(s3_storage)
    run = create_backup_run(source_database)
    run.execute(inline=True)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.error
    return run


def verify(run, **kwargs) -> Verification:
    verification = Verification.objects.create(run=run, **kwargs)
    return verification.execute()


def failed_checks(verification):
    return [c for c in verification.checks if not c["ok"]]


def test_a_fresh_backup_is_verified_after_it_is_made(backed_up):
    verification = backed_up.verifications.get()
    assert verification.status == Status.SUCCEEDED, verification.error
    assert backed_up.verified == BackupRun.Verified.PASSED
    names = {(c["storage"], c["artifact"], c["check"]) for c in verification.checks}
    assert ("offsite", "full.dump.zst", "sha256") in names and ("local", "full.dump.zst", "sha256") in names
    # The deeper checks read the off-site copy, as a disaster would leave it.
    assert ("offsite", "full.dump", "pg_restore full read") in names
    assert ("offsite", "schema.sql", "schema replay") in names
    assert all(a.verified_at for a in backed_up.artifacts.all())
    assert backed_up.database.last_good_run() == backed_up


def flip_byte(s3_client, storage, key, offset=100):
    body = bytearray(s3_client.get_object(Bucket=storage.bucket, Key=key)["Body"].read())
    body[offset] ^= 0xFF
    s3_client.put_object(Bucket=storage.bucket, Key=key, Body=bytes(body))


def test_one_flipped_byte_off_site_is_caught_and_named(backed_up, s3_storage, s3_client):
    artifact = backed_up.artifacts.get(storage=s3_storage, name="full.dump.zst")
    flip_byte(s3_client, s3_storage, artifact.key)
    verification = verify(backed_up)
    assert verification.status == Status.FAILED
    failures = failed_checks(verification)
    assert [(f["storage"], f["artifact"], f["check"]) for f in failures][0] == ("offsite", "full.dump.zst", "sha256")
    detail = failures[0]["detail"]
    assert "storage 'offsite'" in detail and artifact.key in detail and artifact.sha256 in detail and "got " in detail
    # The local copy is fine and reported separately.
    local = next(c for c in verification.checks if c["storage"] == "local" and c["artifact"] == "full.dump.zst")
    assert local["ok"]
    backed_up.refresh_from_db()
    assert backed_up.verified == BackupRun.Verified.FAILED
    assert backed_up.database.last_good_run() is None
    assert Artifact.objects.get(pk=artifact.pk).last_check_ok is False


def test_truncated_and_missing_objects_are_caught(backed_up, s3_storage, s3_client):
    schema = backed_up.artifacts.get(storage=s3_storage, name="schema.sql")
    manifest = backed_up.artifacts.get(storage=s3_storage, name="manifest.json")
    body = s3_client.get_object(Bucket=s3_storage.bucket, Key=schema.key)["Body"].read()
    s3_client.put_object(Bucket=s3_storage.bucket, Key=schema.key, Body=body[: len(body) // 2])
    s3_client.delete_object(Bucket=s3_storage.bucket, Key=manifest.key)
    verification = verify(backed_up)
    details = {(f["storage"], f["artifact"], f["check"]): f["detail"] for f in failed_checks(verification)}
    truncated = details[("offsite", "schema.sql", "sha256")]
    assert f"({schema.size} bytes), got" in truncated and f"({len(body) // 2} bytes)" in truncated
    assert "missing" in details[("offsite", "manifest.json", "sha256")]
    # The intact local schema.sql is still replayed, and says where it came from.
    replay = next(c for c in verification.checks if c["check"] == "schema replay")
    assert replay["ok"] and replay["storage"] == "local"


def test_a_schema_that_does_not_replay_fails_and_says_where(backed_up):
    artifact = backed_up.artifacts.get(storage__name="local", name="schema.sql")
    backend = backend_for(artifact.storage)
    text = (b"".join(backend.read(artifact.key)).decode()
            + "\nCREATE TABLE public.broken (id int REFERENCES public.nowhere(id));\n")
    data = text.encode()
    backend.put_bytes(artifact.key, data)
    import hashlib

    Artifact.objects.filter(pk=artifact.pk).update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    offsite = backed_up.artifacts.get(storage__name="offsite", name="schema.sql")
    backend_for(offsite.storage).put_bytes(offsite.key, data)
    Artifact.objects.filter(pk=offsite.pk).update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    verification = verify(backed_up)
    failure = failed_checks(verification)[0]
    assert failure["check"] == "schema replay"
    assert 'relation "public.nowhere" does not exist' in failure["detail"] and "schema.sql:" in failure["detail"]


def test_a_corrupt_dump_fails_the_full_read(backed_up, s3_storage):
    # A dump whose bytes match its recorded hash but do not decompress: the
    # checksum cannot see it, pg_restore's full read must.
    import hashlib

    import zstandard

    artifact = backed_up.artifacts.get(storage=s3_storage, name="full.dump.zst")
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(b"".join(backend_for(s3_storage).read(artifact.key)))
    broken = zstandard.ZstdCompressor().compress(raw[: len(raw) - 3000])
    backend_for(s3_storage).put_bytes(artifact.key, broken)
    Artifact.objects.filter(pk=artifact.pk).update(sha256=hashlib.sha256(broken).hexdigest(), size=len(broken))
    verification = verify(backed_up)
    assert [f["check"] for f in failed_checks(verification)] == ["pg_restore full read"]


def test_periodic_reverification_checks_every_copy_without_a_sandbox(backed_up):
    verification = verify(backed_up, kind=Verification.Kind.PERIODIC, checksums_only=True)
    assert verification.status == Status.SUCCEEDED
    assert {c["check"] for c in verification.checks} == {"sha256"}
    assert len(verification.checks) == backed_up.artifacts.count()


def test_verify_cli_json_lists_each_check_and_exits_non_zero_on_failure(backed_up, s3_storage, s3_client, capsys):
    call_command("verify", str(backed_up.pk), "--inline", "--json")
    result = json.loads(capsys.readouterr().out)
    assert (result["status"] == "succeeded"
            and {"storage", "artifact", "check", "ok", "detail"} <= set(result["checks"][0]))
    flip_byte(s3_client, s3_storage, backed_up.artifacts.get(storage=s3_storage, name="manifest.json").key, 5)
    with pytest.raises(SystemExit) as exit_info:
        call_command("verify", str(backed_up.pk), "--inline")
    assert exit_info.value.code == 1
    assert "FAIL [offsite] manifest.json sha256" in capsys.readouterr().out


def test_no_sandbox_is_left_behind(backed_up, settings):
    from drills.sandboxes import sandbox_root

    verify(backed_up)
    assert list(sandbox_root().iterdir()) == []
    out = subprocess.run(["pgrep", "-f", str(sandbox_root())], capture_output=True, text=True).stdout
    assert out.strip() == ""


def test_a_storage_hiccup_during_a_recheck_neither_loses_the_backup_nor_its_verified_state(backed_up, s3_storage,
                                                                                           s3_client):
    """The only fully verified backup fails a weekly re-check while a copy is briefly missing: retention
    still keeps it, and the next passing re-check makes it 'verified' again."""
    from datetime import timedelta

    from django.utils import timezone

    from backups.retention import prune_all

    key = backed_up.artifacts.get(storage=s3_storage, name="full.dump.zst").key
    body = s3_client.get_object(Bucket=s3_storage.bucket, Key=key)["Body"].read()
    s3_client.delete_object(Bucket=s3_storage.bucket, Key=key)
    recheck = verify(backed_up, kind=Verification.Kind.PERIODIC, checksums_only=True)
    assert recheck.status == Status.FAILED
    backed_up.refresh_from_db()
    assert backed_up.verified == BackupRun.Verified.FAILED and backed_up.database.last_good_run() is None

    # Weeks later, a newer backup exists that never passed verification: the old one is past every
    # storage's retention, and yet it is still the last evidence of a restorable backup.
    BackupRun.objects.filter(pk=backed_up.pk).update(created=timezone.now() - timedelta(days=200))
    newer = BackupRun.objects.create(database=backed_up.database, status=Status.SUCCEEDED,
                                     verified=BackupRun.Verified.FAILED)
    prune_all()
    assert backed_up.artifacts.filter(deleted_at__isnull=True).count() == backed_up.artifacts.count()

    s3_client.put_object(Bucket=s3_storage.bucket, Key=key, Body=body)  # the storage is back
    assert verify(backed_up, kind=Verification.Kind.PERIODIC, checksums_only=True).status == Status.SUCCEEDED
    backed_up.refresh_from_db()
    assert backed_up.verified == BackupRun.Verified.PASSED and backed_up.database.last_good_run() == backed_up
    assert newer.pk != backed_up.pk


def test_checksums_alone_never_clear_a_failed_full_verification(backed_up):
    full = verify(backed_up, checksums_only=False)
    assert full.status == Status.SUCCEEDED
    Verification.objects.filter(pk=full.pk).update(status=Status.FAILED)  # as if the schema had not replayed
    BackupRun.objects.filter(pk=backed_up.pk).update(verified=BackupRun.Verified.FAILED)
    assert verify(backed_up, kind=Verification.Kind.PERIODIC, checksums_only=True).status == Status.SUCCEEDED
    backed_up.refresh_from_db()
    assert backed_up.verified == BackupRun.Verified.FAILED


def test_a_cancelled_full_verification_says_nothing_about_the_run(backed_up, s3_storage, s3_client):
    key = backed_up.artifacts.get(storage=s3_storage, name="full.dump.zst").key
    body = s3_client.get_object(Bucket=s3_storage.bucket, Key=key)["Body"].read()
    s3_client.delete_object(Bucket=s3_storage.bucket, Key=key)
    assert verify(backed_up, kind=Verification.Kind.PERIODIC, checksums_only=True).status == Status.FAILED
    Verification.objects.create(run=backed_up, status=Status.CANCELLED)  # a full one, cancelled
    s3_client.put_object(Bucket=s3_storage.bucket, Key=key, Body=body)
    assert verify(backed_up, kind=Verification.Kind.PERIODIC, checksums_only=True).status == Status.SUCCEEDED
    backed_up.refresh_from_db()
    assert backed_up.verified == BackupRun.Verified.PASSED


def test_the_run_page_stops_polling_when_its_verification_is_cancelled(client, viewer, source_database):
    run = BackupRun.objects.create(database=source_database, status=Status.SUCCEEDED)
    verification = Verification.objects.create(run=run)
    client.force_login(viewer)
    assert client.get(f"/runs/{run.pk}/", HTTP_HX_REQUEST="true").status_code == 200  # still polling
    verification.request_cancel()
    assert client.get(f"/runs/{run.pk}/", HTTP_HX_REQUEST="true").status_code == 286
