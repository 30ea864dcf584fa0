"""Hostile form posts to the panel answer with the form and its errors (200)
or a redirect (302); never a server error."""

import re
from urllib.parse import urlencode

import pytest
from django.conf import settings
from hypothesis import event, given
from hypothesis import strategies as st

from backups.models import BackupRun, Database
from controlpanel.jobs import Status
from tests.security.hostile import FUZZ, hostile, mutations, numbers_as_text, rolled_back
from tests.security.test_forms_fuzz import STORAGE_BAD, VALID_LOCAL, VALID_S3, database_data

pytestmark = pytest.mark.django_db


def form_body(data: dict) -> bytes:
    """A urlencoded body as a browser would send it, but carrying the raw
    bytes of undecodable text (Django must decode them itself)."""
    return urlencode(data, doseq=True, encoding="utf-8", errors="surrogateescape").encode("ascii")


def post(client, path: str, data: dict):
    body = form_body(data)
    response = client.post(path, body, content_type="application/x-www-form-urlencoded")
    event(f"HTTP {response.status_code}")
    if len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        assert response.status_code == 400  # Django refuses the body before any view code
    else:
        assert response.status_code in (200, 302), (response.status_code, path)
    return response


@pytest.fixture
def admin_client(client, panel_admin):
    client.force_login(panel_admin)
    return client


@FUZZ
@given(data=st.one_of(mutations(VALID_LOCAL, STORAGE_BAD), mutations(VALID_S3, STORAGE_BAD)))
def test_hostile_storage_posts_never_break_the_page(admin_client, data):
    with rolled_back():
        post(admin_client, "/storages/add/", data)


@FUZZ
@given(data=st.data())
def test_hostile_database_posts_never_break_the_page(admin_client, local_storage, data):
    values = data.draw(database_data(local_storage.pk))  # test_connection unchecked: never connect to fuzzed hosts
    with rolled_back():
        post(admin_client, "/databases/add/", values)


@pytest.fixture
def succeeded_run(local_storage):
    database = Database.objects.create(name="app", dbname="app", host="127.0.0.1", port=5432, user="postgres",
                                       primary_storage=local_storage)
    return BackupRun.objects.create(database=database, status=Status.SUCCEEDED)


@FUZZ
@given(data=st.data())
def test_hostile_restore_posts_never_break_the_page(admin_client, succeeded_run, data):
    valid = {"target": "new_database", "keep_hours": "4", "target_database": str(succeeded_run.database.pk),
             "target_dbname": "postgres", "tables": "public.orders", "confirmation": "", "confirm_source": "app"}
    bad = {"target": st.sampled_from(["sandbox", "new_database"]),
           "target_dbname": st.sampled_from(["template0", "postgres", "restored_x", "a" * 63])}
    values = data.draw(mutations(valid, bad))
    with rolled_back():
        # Restores are only queued here: the test transaction never commits, so nothing is enqueued.
        post(admin_client, f"/runs/{succeeded_run.pk}/restore/", values)



def get(client, path: str, params: dict):
    response = client.get(f"{path}?{urlencode(params, encoding='utf-8', errors='surrogateescape')}")
    assert response.status_code == 200, (path, params)
    return response


@FUZZ
@given(status=hostile, page=st.one_of(numbers_as_text, hostile))
def test_hostile_query_strings_never_break_the_database_page(admin_client, succeeded_run, status, page):
    get(admin_client, "/databases/app/", {"status": status, "page": page})


@FUZZ
@given(a=st.one_of(st.just("1"), st.integers(min_value=0).map(str), st.sampled_from(["9" * 30, "0" * 50 + "1"])),
       b=st.one_of(st.integers(min_value=0).map(str), st.sampled_from(["9" * 30, "2147483648"])))
def test_any_run_numbers_in_a_schema_diff_never_break_the_page(admin_client, succeeded_run, a, b):
    get(admin_client, "/databases/app/schema-diff/", {"a": a, "b": b})


@pytest.mark.parametrize("a,b", [("1", ""), ("x", "1"), ("1", "1.5")])
def test_a_schema_diff_of_non_numbers_is_an_error_message(admin_client, succeeded_run, a, b):
    response = get(admin_client, "/databases/app/schema-diff/", {"a": a, "b": b})
    assert "Choose two backups." in response.content.decode()
    heading = re.search(r"<h1>(.*?)</h1>", response.content.decode(), re.S).group(1)
    assert "#" not in heading  # no "# → #" for runs that were never chosen
