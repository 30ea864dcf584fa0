"""Settings come from the environment; a bad value stops the start and names the variable."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from controlpanel import env


def start_django(tmp_path, **variables) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("DJANGO_", "RESTORABLE_", "DATABASE_URL", "CELERY_"))}
    environ.update({"RESTORABLE_DATA_DIR": str(tmp_path / "data"), **variables})
    return subprocess.run(
        [sys.executable, "-c",
         "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='controlpanel.settings'; django.setup(); "
         "from django.conf import settings; "
         "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL)"],
        capture_output=True, text=True, env=environ, cwd=os.getcwd(),
    )


@pytest.mark.parametrize(
    "variable, value",
    [
        ("DJANGO_DEBUG", "maybe"),
        ("DATABASE_URL", "nosuchdb://x"),
        ("RESTORABLE_SECRETS_KEY", "not-a-fernet-key"),
        ("CELERY_BROKER_URL", "kafka://localhost"),
        ("RESTORABLE_HEARTBEAT_SECONDS", "often"),
        ("RESTORABLE_TASK_TIME_LIMIT", "5"),
        ("RESTORABLE_LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_value_fails_at_start_naming_the_variable(tmp_path, variable, value):
    result = start_django(tmp_path, **{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    named = "RESTORABLE_SECRETS_KEY" if variable == "RESTORABLE_SECRETS_KEY" else variable
    assert named in result.stderr.splitlines()[-1]


def test_embedded_defaults_need_no_server_and_generate_keys_once(tmp_path):
    first = start_django(tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["django.db.backends.sqlite3", "filesystem://localhost/"]
    data = tmp_path / "data"
    secret = (data / "django-secret-key").read_text()
    fernet_key = (data / "secrets-key").read_text()
    assert oct((data / "secrets-key").stat().st_mode & 0o777) == "0o600"
    assert start_django(tmp_path).returncode == 0
    assert (data / "django-secret-key").read_text() == secret
    assert (data / "secrets-key").read_text() == fernet_key


def test_secret_can_come_from_a_file(tmp_path, monkeypatch):
    secret_file = tmp_path / "key"
    secret_file.write_text("from-a-file\n")
    monkeypatch.setenv("SOME_SECRET_FILE", str(secret_file))
    assert env.env_secret("SOME_SECRET") == "from-a-file"
    monkeypatch.setenv("SOME_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="SOME_SECRET_FILE"):
        env.env_secret("SOME_SECRET")


@pytest.mark.parametrize("raw, expected", [("1", True), ("yes", True), ("off", False), ("", False)])
def test_env_bool_words(monkeypatch, raw, expected):
    monkeypatch.setenv("FLAG", raw)
    assert env.env_bool("FLAG", not expected) is expected


def test_env_int_bounds(monkeypatch):
    monkeypatch.setenv("N", "0")
    with pytest.raises(ImproperlyConfigured, match="N must be at least 1"):
        env.env_int("N", 5, minimum=1)
