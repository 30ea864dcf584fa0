"""Retention deletes old copies per storage, never the last good backup."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import Artifact, BackupRun
from backups.retention import prune_all
from backups.storage import backend_for
from controlpanel.jobs import Status

Verified = BackupRun.Verified


def make_run(database, storage, days_old, verified=Verified.PASSED, status=Status.SUCCEEDED, keep=False):
    run = BackupRun.objects.create(database=database, status=status, verified=verified, keep=keep,
                                   created=timezone.now() - timedelta(days=days_old))
    run.stamp = f"day-{days_old}"
    run.save()
    backend = backend_for(storage)
    key = backend.key(database.name, run.stamp, "full.dump")
    backend.put_bytes(key, b"dump of day %d" % days_old)
    Artifact.objects.create(run=run, storage=storage, name="full.dump", key=key, size=10, sha256="x")
    return run


def alive(run) -> bool:
    return Artifact.objects.filter(run=run, deleted_at__isnull=True).exists()


@pytest.mark.django_db
def test_old_backups_are_pruned_per_storage_days(source_database, s3_storage):
    local = source_database.primary_storage  # 14 days
    old_local, new_local = make_run(source_database, local, 20), make_run(source_database, local, 2)
    old_s3 = make_run(source_database, s3_storage, 20)  # s3 keeps 90 days
    prune_all()
    assert not alive(old_local) and alive(new_local) and alive(old_s3)
    assert backend_for(local).list() == [o for o in backend_for(local).list() if "day-2" in o.key]
    old_local.refresh_from_db()
    assert old_local.pruned


@pytest.mark.django_db
def test_the_newest_verified_backup_is_never_pruned_even_when_newer_ones_are_bad(source_database):
    local = source_database.primary_storage
    last_good = make_run(source_database, local, 30)
    older = make_run(source_database, local, 40)
    broken = make_run(source_database, local, 20, verified=Verified.FAILED)
    newest = make_run(source_database, local, 16, verified=Verified.PENDING)
    prune_all()
    assert alive(last_good) and alive(newest)
    assert not alive(older) and not alive(broken)


@pytest.mark.django_db
def test_pinned_backups_are_kept(source_database):
    local = source_database.primary_storage
    pinned = make_run(source_database, local, 100, keep=True)
    make_run(source_database, local, 1)
    prune_all()
    assert alive(pinned)


@pytest.mark.django_db
def test_a_pruned_run_is_never_the_last_good_one(source_database):
    local = source_database.primary_storage
    old_good = make_run(source_database, local, 30)
    newest = make_run(source_database, local, 1, verified=Verified.FAILED)
    assert source_database.last_good_run() == old_good
    BackupRun.objects.filter(pk=old_good.pk).update(pruned=timezone.now())  # its files are gone
    assert source_database.last_good_run() is None
    from controlpanel.site.overview import overview_rows

    assert overview_rows()[0]["database"].last_good_id is None
    assert newest.verified == Verified.FAILED


@pytest.mark.django_db
def test_a_pruned_run_says_so_and_offers_no_restore(client, panel_admin, source_database):
    local = source_database.primary_storage
    old = make_run(source_database, local, 40)
    make_run(source_database, local, 1)
    prune_all()
    old.refresh_from_db()
    assert old.pruned
    client.force_login(panel_admin)
    page = client.get(f"/runs/{old.pk}/").content.decode()
    assert 'id="run-pruned"' in page and "deleted " in page
    assert 'id="restore-button"' not in page and 'id="verify-now"' not in page
    response = client.get(f"/runs/{old.pk}/restore/", follow=True)
    assert "deleted by retention" in response.content.decode()
    response = client.post(f"/runs/{old.pk}/verify/", follow=True)
    assert "deleted by retention" in response.content.decode() and not old.verifications.exists()
