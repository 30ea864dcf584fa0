"""Pages cost the same number of SQL queries whatever the number of databases and runs."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backups.models import BackupRun, Database
from controlpanel.jobs import Status
from drills.models import Drill

pytestmark = pytest.mark.django_db


def add(storage, databases: int, runs: int) -> None:
    for i in range(databases):
        db = Database.objects.create(name=f"db{Database.objects.count()}-{i}", dbname="x", primary_storage=storage,
                                     server_version=150000)
        BackupRun.objects.bulk_create(BackupRun(database=db, status=Status.SUCCEEDED, verified="passed")
                                      for _ in range(runs))
        Drill.objects.create(database=db, status=Status.SUCCEEDED, rto_seconds=12.5, within_budget=True)


def queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_overview_query_count_is_flat(admin_client, local_storage):
    add(local_storage, 2, 3)
    small = queries(admin_client, "/")
    add(local_storage, 8, 40)
    assert queries(admin_client, "/") == small


def test_database_page_query_count_is_flat(admin_client, local_storage):
    add(local_storage, 1, 3)
    name = Database.objects.get().name
    small = queries(admin_client, f"/databases/{name}/")
    BackupRun.objects.bulk_create(BackupRun(database=Database.objects.get(), status=Status.SUCCEEDED)
                                  for _ in range(200))
    assert queries(admin_client, f"/databases/{name}/") == small
