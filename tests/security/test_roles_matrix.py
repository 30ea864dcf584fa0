"""Each role can do exactly what it should: a table of role x action."""

import pytest

from backups.models import BackupRun
from controlpanel.jobs import Status
from controlpanel.models import AuditEvent
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

# action: (method, url, allowed roles). A refused action answers 403; an
# allowed one anything but 403 (a redirect, a form, a 200).
ACTIONS = {
    "see overview": ("get", "/", {"viewer", "operator", "admin"}),
    "see a run": ("get", "/runs/{run}/", {"viewer", "operator", "admin"}),
    "see the audit log": ("get", "/audit/", {"viewer", "operator", "admin"}),
    "back up now": ("post", "/databases/app/backup/", {"operator", "admin"}),
    "verify": ("post", "/runs/{run}/verify/", {"operator", "admin"}),
    "drill now": ("post", "/databases/app/drill/", {"operator", "admin"}),
    "open the restore wizard": ("get", "/runs/{run}/restore/", {"admin"}),
    "restore": ("post", "/runs/{run}/restore/", {"admin"}),
    "add a storage": ("get", "/storages/add/", {"admin"}),
    "edit a storage": ("post", "/storages/local/edit/", {"admin"}),
    "test a storage": ("post", "/storages/local/test/", {"admin"}),
    "add a database": ("get", "/databases/add/", {"admin"}),
    "edit a database": ("post", "/databases/app/edit/", {"admin"}),
}


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
@pytest.mark.parametrize("action", list(ACTIONS))
def test_role_action_matrix(client, source_database, monkeypatch, role, action):
    monkeypatch.setattr("controlpanel.jobs.send", lambda job, queue: type("R", (), {"id": "t"})())
    run = BackupRun.objects.create(database=source_database, status=Status.SUCCEEDED, verified="passed")
    client.force_login(make_user(f"u-{role}", role))
    method, url, allowed = ACTIONS[action]
    response = getattr(client, method)(url.format(run=run.pk), {"target": "sandbox", "keep_hours": 1,
                                                                "confirm_source": "app"} if action == "restore" else {})
    if role in allowed:
        assert response.status_code != 403, f"{role} should be able to {action}"
    else:
        assert response.status_code == 403, f"{role} must not be able to {action}"


def test_restores_are_audited_with_who(client, source_database, monkeypatch, panel_admin):
    monkeypatch.setattr("controlpanel.jobs.send", lambda job, queue: type("R", (), {"id": "t"})())
    run = BackupRun.objects.create(database=source_database, status=Status.SUCCEEDED, verified="passed")
    client.force_login(panel_admin)
    client.post(f"/runs/{run.pk}/restore/", {"target": "sandbox", "keep_hours": 2, "confirm_source": "app"})
    event = AuditEvent.objects.get(action="restore.start")
    assert event.user == panel_admin and "sandbox for 2 h" in event.summary and event.ip == "127.0.0.1"


def test_session_cookies_are_secure_in_production(settings):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE']="
                          "'controlpanel.settings'; os.environ['RESTORABLE_HTTPS']='true'; django.setup(); "
                          "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, "
                          "s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.SECURE_SSL_REDIRECT)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True", "True"]
