"""Storages from the page and the CLI go through one save_storage(): access is
tested before saving (unless the admin says otherwise), the bucket lifecycle
rule is applied, and a storage is deleted only when nothing needs it, its files
left in place. The pages are rendered in Chromium at both widths."""

import re

import pytest
from botocore.exceptions import ClientError
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from backups.models import Artifact, BackupRun, PitrSetup, Storage
from backups.storage import backend_for
from controlpanel.jobs import Status
from controlpanel.models import AuditEvent
from tests.browser import at_both_widths, needs_chromium
from tests.conftest import S3_KEYS, make_user

SECRET = S3_KEYS["aws_secret_access_key"]


def s3_form(endpoint: str, bucket: str, **changes) -> dict:
    return {"name": "offsite", "kind": "s3", "path": "", "endpoint_url": endpoint, "region": "us-east-1",
            "bucket": bucket, "prefix": "restorable", "path_style": "on",
            "access_key_id": S3_KEYS["aws_access_key_id"], "secret_access_key": SECRET,
            "server_side_encryption": "", "multipart_chunk_mb": "5", "retention_days": "90",
            "lifecycle_days": "30", **changes}


def local_form(path, **changes) -> dict:
    return {"name": "disk", "kind": "local", "path": str(path), "region": "auto", "multipart_chunk_mb": "5",
            "retention_days": "14", "lifecycle_days": "", **changes}


def rules(s3_client, bucket) -> dict:
    try:
        found = s3_client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
        return {}
    return {rule["ID"]: rule for rule in found}


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def admin_client(client, panel_admin):
    client.force_login(panel_admin)
    return client


# --- saving: the lifecycle rule and the access test -----------------------------------------

def test_saving_an_s3_storage_from_the_page_applies_the_bucket_lifecycle_rule(admin_client, s3_endpoint, s3_bucket,
                                                                              s3_client):
    # A rule the bucket's owner set for something else must survive ours.
    s3_client.put_bucket_lifecycle_configuration(Bucket=s3_bucket, LifecycleConfiguration={"Rules": [
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 3}}]})
    response = admin_client.post("/storages/add/", s3_form(s3_endpoint, s3_bucket), follow=True)
    assert response.redirect_chain == [("/storages/", 302)]
    assert messages_of(response) == ["Storage offsite saved: wrote, read and deleted a test object; "
                                     "bucket lifecycle rule set to 30 days."]
    ours = rules(s3_client, s3_bucket)["restorable-expire-offsite"]
    assert ours["Expiration"] == {"Days": 30} and ours["Filter"] == {"Prefix": "restorable/"}
    assert "bucket rule 30 days" in response.content.decode()

    edit = s3_form(s3_endpoint, s3_bucket, lifecycle_days="45", access_key_id="", secret_access_key="")
    assert admin_client.post("/storages/offsite/edit/", edit).status_code == 302  # empty keys keep the stored ones
    assert rules(s3_client, s3_bucket)["restorable-expire-offsite"]["Expiration"] == {"Days": 45}

    admin_client.post("/storages/offsite/edit/", {**edit, "lifecycle_days": ""})
    assert set(rules(s3_client, s3_bucket)) == {"logs"}  # ours removed, theirs kept
    assert Storage.objects.get().lifecycle_days is None
    audited = " ".join(f"{e.summary} {e.details}" for e in AuditEvent.objects.filter(action="storage.save"))
    assert audited.count("Storage offsite saved") == 3 and SECRET not in audited


def test_an_unusable_directory_is_not_saved_unless_the_admin_says_so(admin_client):
    response = admin_client.post("/storages/add/", local_form("/proc/restorable-backups"))
    page = response.content.decode()
    assert response.status_code == 200 and not Storage.objects.exists()
    assert "Not saved: Directory /proc/restorable-backups is not writable" in page
    assert 'value="/proc/restorable-backups"' in page  # what was typed is still there to fix

    response = admin_client.post("/storages/add/", local_form("/proc/restorable-backups", save_without_testing="on"),
                                 follow=True)
    assert Storage.objects.get().path == "/proc/restorable-backups"
    assert messages_of(response) == ["Storage disk saved without testing: press Test once it can be reached "
                                     "(that also applies its bucket lifecycle rule)."]
    assert AuditEvent.objects.get(action="storage.save").summary == "Storage disk saved without testing access"


def test_an_edit_that_breaks_access_keeps_the_stored_storage(admin_client, local_storage):
    before = local_storage.path
    response = admin_client.post("/storages/local/edit/", local_form("/proc/elsewhere", name="local"))
    assert "Not saved" in response.content.decode() and "Edit storage local" in response.content.decode()
    local_storage.refresh_from_db()
    assert local_storage.path == before


def test_a_missing_bucket_is_an_error_that_never_shows_the_secret(admin_client, s3_endpoint, s3_bucket, s3_client):
    missing = admin_client.post("/storages/add/", s3_form(s3_endpoint, "no-such-bucket-here"))
    page = missing.content.decode()
    assert "Not saved: Bucket &#x27;no-such-bucket-here&#x27; does not exist" in page
    assert "Type the access keys again." in page and SECRET not in page
    assert not Storage.objects.exists() and rules(s3_client, s3_bucket) == {}


def test_the_test_button_applies_the_rule_of_a_storage_saved_untested(admin_client, s3_storage, s3_client):
    Storage.objects.filter(pk=s3_storage.pk).update(lifecycle_days=10)  # saved without testing
    response = admin_client.post("/storages/offsite/test/")
    assert "bucket lifecycle rule set to 10 days" in response["HX-Trigger"]
    assert rules(s3_client, s3_storage.bucket)["restorable-expire-offsite"]["Expiration"] == {"Days": 10}


def test_add_storage_applies_the_lifecycle_rule_through_the_same_service(db, s3_endpoint, s3_bucket, s3_client,
                                                                         monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEYS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    call_command("add_storage", "r2", "--s3-endpoint", s3_endpoint, "--bucket", s3_bucket, "--path-style",
                 "--region", "us-east-1", "--lifecycle-days", "7", "--no-test")
    assert rules(s3_client, s3_bucket) == {}  # --no-test: the bucket is not touched
    call_command("add_storage", "r2", "--s3-endpoint", s3_endpoint, "--bucket", s3_bucket, "--lifecycle-days", "7")
    assert rules(s3_client, s3_bucket)["restorable-expire-r2"]["Expiration"] == {"Days": 7}
    assert [e.summary for e in AuditEvent.objects.filter(action="storage.save").order_by("pk")] == [
        "Storage r2 saved without testing access", "Storage r2 saved"]


# --- deleting ------------------------------------------------------------------------------

def stored_run(database, storage, **fields) -> BackupRun:
    run = BackupRun.objects.create(database=database, status=Status.SUCCEEDED, verified="passed", **fields)
    Artifact.objects.create(run=run, storage=storage, name="full.dump", key=f"app/{run.pk}/full.dump", size=3,
                            sha256="0" * 64)
    return run


def test_a_storage_in_use_is_not_deleted_and_the_reason_is_given(admin_client, source_database, local_storage,
                                                                  s3_storage, tmp_path):
    response = admin_client.post("/storages/local/delete/", HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert "used by database app" in response["HX-Trigger"] and '"error"' in response["HX-Trigger"]

    source_database.offsite_storages.add(s3_storage)
    assert "used by database app" in admin_client.post("/storages/offsite/delete/",
                                                       HTTP_HX_REQUEST="true")["HX-Trigger"]
    source_database.offsite_storages.clear()
    PitrSetup.objects.create(database=source_database, stanza="app", repo_path=str(tmp_path),
                             offsite_storage=s3_storage)
    response = admin_client.post("/storages/offsite/delete/", follow=True)  # without JavaScript: a page
    assert any("used by database app" in m for m in messages_of(response))
    assert Storage.objects.count() == 2 and not AuditEvent.objects.filter(action="storage.delete").exists()


def test_a_storage_holding_a_retained_backup_is_not_deleted(admin_client, source_database, s3_storage):
    run = stored_run(source_database, s3_storage)  # the database has moved on; its backup has not
    response = admin_client.post("/storages/offsite/delete/", HTTP_HX_REQUEST="true")
    assert f"still holds 1 retained backup (#{run.pk})" in response["HX-Trigger"]
    assert Storage.objects.filter(name="offsite").exists()


def test_deleting_a_storage_forgets_it_and_leaves_its_files(admin_client, source_database, s3_storage, s3_client):
    backend_for(s3_storage).put_bytes(backend_for(s3_storage).key("app", "full.dump"), b"abc")
    stored_run(source_database, s3_storage, pruned=timezone.now())  # pruned: history only
    response = admin_client.post("/storages/offsite/delete/", HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and response["HX-Redirect"] == "/storages/"
    assert not Storage.objects.filter(name="offsite").exists() and not Artifact.objects.exists()
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_storage.bucket).get("Contents", [])]
    assert keys == ["restorable/app/full.dump"]
    event = AuditEvent.objects.get(action="storage.delete")
    assert event.summary == (f"Storage offsite (s3://{s3_storage.bucket}/restorable) deleted; "
                             "its files were left in place")
    assert event.user is not None and SECRET not in str(event.details)


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_delete_storages(client, s3_storage, role):
    client.force_login(make_user(f"u-{role}", role))
    assert client.post("/storages/offsite/delete/").status_code == 403
    assert client.get("/storages/offsite/delete/").status_code in (403, 405)
    assert Storage.objects.filter(name="offsite").exists()


# --- the pages in Chromium -----------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@needs_chromium
def test_the_storage_list_pages_empty_full_and_refusing_a_delete(browser, live_server, panel_admin, source_database,
                                                                  s3_storage, s3_client, tmp_path):
    def empty(page):
        expect(page.locator("#storages")).to_contain_text("No storage yet")
        expect(page.locator("main")).to_contain_text("Add a storage")

    Storage.objects.filter(pk=s3_storage.pk).update(lifecycle_days=30)
    source_database.offsite_storages.add(s3_storage)
    spare = Storage.objects.create(name="spare", kind=Storage.Kind.LOCAL, path=str(tmp_path / "spare"))

    def listed(page):
        expect(page.locator("#storage-offsite")).to_contain_text("90 days; bucket rule 30 days")
        expect(page.locator("#storage-local")).to_contain_text(source_database.primary_storage.path)
        expect(page.locator("#storage-spare button", has_text="Delete")).to_be_visible()
        fits = "document.querySelector('#storages-wrap').getBoundingClientRect().right <= window.innerWidth"
        assert page.evaluate(fits), "the storage table widens the page"

    def refused(page):
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#storage-offsite button", has_text="Delete").click()
        expect(page.locator("#toasts")).to_contain_text("Storage offsite is used by database app")
        expect(page.locator("#storage-offsite")).to_be_visible()

    at_both_widths(browser, live_server.url, panel_admin.username, "/storages/", "storages-list", listed)
    at_both_widths(browser, live_server.url, panel_admin.username, "/storages/", "storages-delete-refused", refused)
    assert Storage.objects.count() == 3

    def deleted(page):
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#storage-spare button", has_text="Delete").click()
        expect(page.locator("#toasts")).to_contain_text("Storage spare deleted; its files were left in place.")
        expect(page.locator("#storage-spare")).to_have_count(0)
        Storage.objects.get_or_create(name="spare", kind=Storage.Kind.LOCAL, path=str(tmp_path / "spare"))

    at_both_widths(browser, live_server.url, panel_admin.username, "/storages/", "storages-deleted", deleted)
    assert spare.pk not in Storage.objects.values_list("pk", flat=True)

    source_database.delete()
    Storage.objects.all().delete()
    at_both_widths(browser, live_server.url, panel_admin.username, "/storages/", "storages-empty", empty)


@pytest.mark.django_db(transaction=True)
@needs_chromium
def test_the_storage_form_new_edit_failing_and_saved_without_testing(browser, live_server, panel_admin,
                                                                     local_storage, tmp_path):
    def new(page):
        expect(page.locator("h1")).to_have_text("Add a storage")
        expect(page.locator("input[name=save_without_testing]")).not_to_be_checked()

    def edit(page):
        expect(page.locator("h1")).to_have_text("Edit storage local")
        expect(page.locator("input[name=path]")).to_have_value(local_storage.path)

    def failing(page):
        name = f"proc{page.viewport_size['width']}"
        page.fill("input[name=name]", name)
        page.select_option("select[name=kind]", "local")
        page.fill("input[name=path]", "/proc/restorable")
        page.click("main button[type=submit]")
        expect(page.locator("#storage-error")).to_contain_text("Not saved: Directory /proc/restorable is not writable")
        expect(page.locator("input[name=path]")).to_have_value("/proc/restorable")
        assert not Storage.objects.filter(name=name).exists()

    def untested(page):
        name = f"later{page.viewport_size['width']}"
        page.fill("input[name=name]", name)
        page.select_option("select[name=kind]", "local")
        page.fill("input[name=path]", "/proc/restorable")
        page.check("input[name=save_without_testing]")
        page.click("main button[type=submit]")
        expect(page).to_have_url(re.compile(r"/storages/$"))
        expect(page.locator("#toasts")).to_contain_text(f"Storage {name} saved without testing")
        expect(page.locator(f"#storage-{name}")).to_contain_text("/proc/restorable")

    for path, name, check in (("/storages/add/", "storage-form-new", new),
                              ("/storages/local/edit/", "storage-form-edit", edit),
                              ("/storages/add/", "storage-form-access-failing", failing),
                              ("/storages/add/", "storage-form-saved-untested", untested)):
        at_both_widths(browser, live_server.url, panel_admin.username, path, name, check)
    assert sorted(Storage.objects.values_list("name", flat=True)) == ["later1280", "later390", "local"]
