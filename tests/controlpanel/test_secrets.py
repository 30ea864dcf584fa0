"""Passwords and keys are encrypted at rest and never rendered back."""

import pytest
from django.db import connection

from backups.forms import StorageForm
from backups.models import Database, Storage
from controlpanel.crypto import Secret

PASSWORD = "db-pass-Zq8x-never-shown"
SECRET_KEY = "s3-secret-Wm4k-never-shown"


@pytest.fixture
def with_secrets(db):
    storage = Storage.objects.create(name="r2", kind="s3", bucket="backups", endpoint_url="http://127.0.0.1:9",
                                     access_key_id="AKIDEXAMPLE", secret_access_key=SECRET_KEY)
    database = Database.objects.create(name="app", dbname="app", password=PASSWORD, primary_storage=storage)
    return storage, database


def test_secrets_are_encrypted_in_the_database(with_secrets):
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_access_key FROM backups_storage")
        raw_key = cursor.fetchone()[0]
        cursor.execute("SELECT password FROM backups_database")
        raw_password = cursor.fetchone()[0]
    assert SECRET_KEY not in raw_key and raw_key.startswith("fernet:")
    assert PASSWORD not in raw_password and raw_password.startswith("fernet:")
    assert Database.objects.get().password == PASSWORD


def test_decrypted_secret_repr_is_masked(with_secrets):
    password = Database.objects.get().password
    assert isinstance(password, Secret)
    assert PASSWORD not in repr(password) and PASSWORD not in repr({"p": password})


@pytest.mark.parametrize("url", ["/admin/backups/storage/{s}/change/", "/admin/backups/database/{d}/change/",
                                 "/storages/r2/edit/", "/databases/app/edit/", "/databases/app/", "/storages/"])
def test_secrets_never_appear_in_rendered_pages(client, admin_client, with_secrets, url):
    storage, database = with_secrets
    response = admin_client.get(url.format(s=storage.pk, d=database.pk))
    assert response.status_code == 200
    body = response.content.decode()
    assert PASSWORD not in body and SECRET_KEY not in body
    assert "fernet:" not in body


def test_empty_secret_input_keeps_the_stored_value(with_secrets):
    storage, _ = with_secrets
    data = {f: getattr(storage, f) for f in StorageForm.Meta.fields}
    data.update(access_key_id="", secret_access_key="", lifecycle_days="")
    form = StorageForm(data, instance=storage)
    assert form.is_valid(), form.errors
    form.save()
    storage.refresh_from_db()
    assert storage.secret_access_key == SECRET_KEY


def test_key_rotation_reads_old_tokens(with_secrets, settings):
    from cryptography.fernet import Fernet

    settings.SECRETS_KEYS = [Fernet.generate_key().decode(), *settings.SECRETS_KEYS]
    assert Database.objects.get().password == PASSWORD


def test_rotate_secrets_re_encrypts_with_the_new_key(with_secrets, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    old_keys = list(settings.SECRETS_KEYS)
    settings.SECRETS_KEYS = [Fernet.generate_key().decode(), *old_keys]
    call_command("rotate_secrets")
    settings.SECRETS_KEYS = settings.SECRETS_KEYS[:1]  # the old key is dropped
    assert Database.objects.get().password == PASSWORD
    assert Storage.objects.get().secret_access_key == SECRET_KEY


def test_channel_urls_are_write_only_in_the_admin(admin_client, db):
    from controlpanel.models import NotificationChannel

    channel = NotificationChannel.objects.create(name="tg", url="tgram://123456:SECRET-BOT-TOKEN/789")
    body = admin_client.get(f"/admin/controlpanel/notificationchannel/{channel.pk}/change/").content.decode()
    assert "SECRET-BOT-TOKEN" not in body and "fernet:" not in body


def test_the_admin_refuses_a_cron_that_never_fires(admin_client, source_database):
    policy = source_database.policy
    response = admin_client.post(f"/admin/backups/backuppolicy/{policy.pk}/change/", {
        "database": source_database.pk, "dump_cron": "0 0 31 2 *",
        "drill_cron": "0 5 1-7 * 0", "compression": "auto", "enabled": "on"})
    assert response.status_code == 200 and "errorlist" in response.content.decode()
