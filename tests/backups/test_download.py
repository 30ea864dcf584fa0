"""Admins download a backup's files from the panel: streamed from the storage,
checksummed, audited; nobody else may."""

import hashlib

import pytest
from django.utils import timezone

from backups.services import create_backup_run
from backups.storage import backend_for
from controlpanel.jobs import Status
from controlpanel.models import AuditEvent
from tests.conftest import psql

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run(source_database, s3_storage, monkeypatch):
    monkeypatch.setattr("controlpanel.jobs.send", lambda job, queue: type("R", (), {"id": "t"})())
    psql(source_database.dbname, "CREATE TABLE t AS SELECT generate_series(1, 3000) AS i")
    source_database.offsite_storages.add(s3_storage)
    run = create_backup_run(source_database)
    run.execute()
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.error
    return run


def test_an_admin_downloads_each_copy_intact(client, panel_admin, run):
    client.force_login(panel_admin)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    for artifact in run.artifacts.filter(name="full.dump.zst"):
        assert f'id="download-{artifact.pk}"' in page
        response = client.get(f"/artifacts/{artifact.pk}/download/")
        assert response.status_code == 200
        body = b"".join(response.streaming_content)
        assert hashlib.sha256(body).hexdigest() == artifact.sha256 == response["X-Checksum-SHA256"]
        assert int(response["Content-Length"]) == len(body) == artifact.size
        assert f'filename="app-{run.stamp}-full.dump.zst"' in response["Content-Disposition"]
    events = AuditEvent.objects.filter(action="artifact.download", user=panel_admin)
    assert sorted(e.details["storage"] for e in events) == ["local", "offsite"]


def test_a_missing_object_is_a_message_not_a_broken_download(client, panel_admin, run):
    artifact = run.artifacts.get(storage__name="local", name="full.dump.zst")
    backend_for(artifact.storage).delete(artifact.key)
    client.force_login(panel_admin)
    response = client.get(f"/artifacts/{artifact.pk}/download/", follow=True)
    assert response.redirect_chain[-1][0] == f"/runs/{run.pk}/"
    assert "Cannot download full.dump.zst from local" in response.content.decode()
    assert not AuditEvent.objects.filter(action="artifact.download").exists()


def test_only_admins_download_and_never_deleted_files(client, viewer, operator, panel_admin, run):
    artifact = run.artifacts.get(storage__name="local", name="full.dump.zst")
    for user in (viewer, operator):
        client.force_login(user)
        assert f'id="download-{artifact.pk}"' not in client.get(f"/runs/{run.pk}/").content.decode()
        assert client.get(f"/artifacts/{artifact.pk}/download/").status_code == 403
    type(artifact).objects.filter(pk=artifact.pk).update(deleted_at=timezone.now())
    client.force_login(panel_admin)
    assert client.get(f"/artifacts/{artifact.pk}/download/").status_code == 404
