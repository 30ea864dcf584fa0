"""Every form answers malformed input with errors or a valid form that saves;
never an exception."""

from pathlib import PurePosixPath

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from backups.forms import DatabaseForm, StorageForm, validate_cron, validate_timezone
from backups.models import BackupRun, Database, Storage
from backups.schedules import next_runs
from controlpanel.jobs import Status
from drills.forms import RestoreForm
from drills.models import Restore
from drills.services import create_restore
from tests.security.hostile import (
    FUZZ,
    bucket_like,
    cron_like,
    dsn_like,
    hostile,
    mutations,
    numbers_as_text,
    rolled_back,
    timezone_like,
    traversal,
)

pytestmark = pytest.mark.django_db

flag = st.sampled_from(["", "on", "true", "false", "0", "\x00", "\udcff"])
numbers = st.one_of(numbers_as_text, st.sampled_from(["5", "64", "14", "36500", "36501"]))

VALID_LOCAL = {
    "name": "disk", "kind": "local", "path": "/var/backups/restorable", "endpoint_url": "", "region": "auto",
    "bucket": "", "prefix": "", "path_style": "", "access_key_id": "", "secret_access_key": "",
    "server_side_encryption": "", "checksum_when_required": "", "multipart_chunk_mb": "5", "retention_days": "14",
    "lifecycle_days": "",
}
VALID_S3 = {
    **VALID_LOCAL, "name": "r2", "kind": "s3", "path": "", "endpoint_url": "https://acc.r2.cloudflarestorage.com",
    "bucket": "my-backups", "prefix": "prod/db", "access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t/+=",
    "lifecycle_days": "30",
}
STORAGE_BAD = {
    "kind": st.sampled_from(["local", "s3", "LOCAL", "ftp"]),
    "path": st.one_of(traversal.map(lambda p: "/" + p), traversal),
    "endpoint_url": st.one_of(dsn_like, st.sampled_from(["javascript:alert(1)", "file:///etc/passwd", "//h", "h:1"])),
    "bucket": bucket_like,
    "prefix": traversal,
    "path_style": flag,
    "checksum_when_required": flag,
    "multipart_chunk_mb": numbers,
    "retention_days": numbers,
    "lifecycle_days": numbers,
    "server_side_encryption": st.sampled_from(["AES256", "aws:kms", "aes256", "none"]),
}


@FUZZ
@given(data=st.one_of(mutations(VALID_LOCAL, STORAGE_BAD), mutations(VALID_S3, STORAGE_BAD)))
def test_storage_form_rejects_or_saves_hostile_values(data):
    with rolled_back():
        form = StorageForm(data, instance=Storage())
        if not form.is_valid():
            assert form.errors
            return
        storage = form.save()
        if storage.kind == Storage.Kind.LOCAL:
            assert storage.path.startswith("/") and ".." not in PurePosixPath(storage.path).parts
        assert ".." not in storage.prefix.split("/") and "\\" not in storage.prefix


@pytest.fixture
def disk(db):
    return Storage.objects.create(name="disk", kind=Storage.Kind.LOCAL, path="/var/backups/restorable")


def valid_database(storage_pk: int) -> dict:
    return {
        "name": "app", "host": "127.0.0.1", "port": "5432", "dbname": "app", "user": "postgres", "password": "pw",
        "sslmode": "prefer", "timezone": "Europe/Berlin", "primary_storage": str(storage_pk),
        "offsite_storages": [str(storage_pk)], "include_globals": "on", "rto_budget_seconds": "3600",
        "rpo_budget_seconds": "86400", "tables_that_matter": "public.orders, users", "smoke_sql": "SELECT 1",
        "agent_queue": "",
    }


def database_data(storage_pk: int):
    """DatabaseForm data without test_connection: the form never connects to fuzzed hosts."""
    bad = {
        "host": st.sampled_from(["/var/run/postgresql", "::1", "[::1]", "-h", "a b", "db.internal", "h%eth0"]),
        "port": numbers, "rto_budget_seconds": numbers, "rpo_budget_seconds": numbers,
        "sslmode": st.sampled_from(["disable", "verify-full", "VERIFY-FULL", "off"]),
        "timezone": timezone_like,
        "primary_storage": numbers,
        "offsite_storages": st.lists(st.one_of(numbers, hostile), max_size=3),
        "include_globals": flag,
        "tables_that_matter": st.sampled_from(["a.b.c", "public.", ".x", "x\ny", "a,,b", "$1", "é.ü", "a b"]),
    }
    return mutations(valid_database(storage_pk), bad)


@FUZZ
@given(data=st.data())
def test_database_form_rejects_or_saves_hostile_values(disk, data):
    values = {**data.draw(database_data(disk.pk)), "test_connection": ""}
    with rolled_back():
        form = DatabaseForm(values, instance=Database())
        if not form.is_valid():
            assert form.errors
            return
        database = form.save()  # also writes the beat schedules in the database's time zone
        next_runs(database.policy.dump_cron, database.timezone, count=1)


@pytest.fixture
def succeeded_run(disk):
    database = Database.objects.create(name="app", dbname="app", host="127.0.0.1", port=5432, user="postgres",
                                       primary_storage=disk)
    return BackupRun.objects.create(database=database, status=Status.SUCCEEDED)


@FUZZ
@given(data=st.data())
def test_restore_form_rejects_or_starts_a_restore(succeeded_run, data):
    valid = {"target": "new_database", "keep_hours": "4", "target_database": str(succeeded_run.database.pk),
             "target_dbname": "restored", "tables": "public.orders, users", "confirmation": "restored",
             "confirm_source": "app"}
    bad = {"target": st.sampled_from(["sandbox", "new_database", "SANDBOX"]), "keep_hours": numbers,
           "target_database": numbers, "tables": st.sampled_from(["a.b.c", "public.", ".x", "a,,b", "$x", "é"]),
           "target_dbname": st.sampled_from(["_x", "9lives", "a" * 63, "a" * 64, "é", "a$b"])}
    values = data.draw(mutations(valid, bad))
    with rolled_back():
        form = RestoreForm(values, source_name="app")
        if not form.is_valid():
            assert form.errors
            return
        d = form.cleaned_data
        job = create_restore(succeeded_run, target=d["target"], keep_hours=d["keep_hours"],
                             target_database=d["target_database"], target_dbname=d["target_dbname"],
                             tables=d["tables"], confirmation=d["confirmation"])
        assert Restore.objects.filter(pk=job.pk).exists()


@FUZZ
@given(expression=st.one_of(cron_like, hostile))
def test_a_cron_expression_is_refused_or_fires(expression):
    try:
        validate_cron(expression)
    except ValidationError:
        return
    # Accepted: the database page shows its next runs and beat must be able to schedule it.
    assert len(next_runs(expression, "UTC", count=2)) == 2


@FUZZ
@given(name=st.one_of(timezone_like, hostile))
def test_a_time_zone_is_refused_or_usable(name):
    try:
        validate_timezone(name)
    except ValidationError:
        return
    assert next_runs("15 3 * * *", name, count=1)


@pytest.mark.parametrize("expression", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_a_cron_expression_that_never_fires_is_refused(expression):
    with pytest.raises(ValidationError):
        validate_cron(expression)


@pytest.mark.parametrize("name", ["America", "Europe", "__pycache__", "a" * 300])
def test_a_time_zone_directory_or_overlong_name_is_refused(name):
    with pytest.raises(ValidationError):
        validate_timezone(name)


@pytest.mark.parametrize("field,value", [("path", "/srv/backups/\udcff"), ("region", "eu-\udce9"),
                                         ("secret_access_key", "k\udcff")])
def test_undecodable_argv_bytes_are_a_storage_form_error(db, field, value):
    form = StorageForm({**VALID_LOCAL, field: value}, instance=Storage())
    assert not form.is_valid() and field in form.errors


def test_undecodable_bytes_are_a_database_and_restore_form_error(succeeded_run):
    data = {**valid_database(succeeded_run.database.primary_storage_id), "name": "other", "password": "\udcff"}
    form = DatabaseForm(data, instance=Database())
    assert not form.is_valid() and list(form.errors) == ["password"]
    form = RestoreForm({"target": "sandbox", "keep_hours": "4", "confirmation": "\udcff", "confirm_source": "app"},
                       source_name="app")
    assert not form.is_valid() and list(form.errors) == ["confirmation"]
