"""Every page needs a login; roles decide who may do what."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from backups.models import BackupRun
from controlpanel.roles import ADMIN, OPERATOR, VIEWER, role_of

PUBLIC = {"login", "health-live", "health-ready", "metrics", "favicon"}  # favicon: a redirect to a static file


def all_patterns(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from all_patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.name


def example_url(pattern: str) -> str:
    import re

    url = re.sub(r"<int:\w+>", "1", pattern)
    url = re.sub(r"<(?:str:|slug:|path:)?\w+>", "x", url)
    url = re.sub(r"\(\?P<\w+>[^)]*\)", "x", url)
    url = url.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\", "")
    return "/" + url


def test_anonymous_requests_to_every_url_redirect_to_login(client, db):
    checked = 0
    for pattern, name in all_patterns():
        if name in PUBLIC or pattern.startswith("admin/") or "(?" in pattern:
            continue
        url = example_url(pattern)
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302, f"{url} answered {response.status_code}"
            assert response["Location"].startswith("/login/"), url
        checked += 1
    assert checked >= 8


def test_admin_site_needs_a_login_too(client, db):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_health_endpoints_are_public(client, db):
    assert client.get("/health/live").json() == {"status": "ok"}
    assert client.get("/health/ready").status_code in (200, 503)


def test_roles_carry_the_right_permissions(viewer, operator, panel_admin):
    assert (role_of(viewer), role_of(operator), role_of(panel_admin)) == (VIEWER, OPERATOR, ADMIN)
    assert viewer.has_perm("backups.view_database") and not viewer.has_perm("backups.run_backup")
    assert operator.has_perm("backups.run_backup") and operator.has_perm("drills.run_drill")
    assert not operator.has_perm("drills.run_restore") and not operator.has_perm("backups.change_storage")
    assert panel_admin.has_perm("drills.run_restore") and panel_admin.has_perm("backups.change_storage")


def test_viewer_cannot_start_a_backup_but_operator_can(client, viewer, operator, source_database,
                                                       django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr("controlpanel.jobs.send",
                        lambda job, queue: sent.append(job.pk) or type("R", (), {"id": "t"})())
    client.force_login(viewer)
    assert client.post(f"/databases/{source_database.name}/backup/").status_code == 403
    assert not BackupRun.objects.exists()
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/databases/{source_database.name}/backup/")
    run = BackupRun.objects.get()
    assert response.status_code == 302 and sent == [run.pk]


@pytest.mark.parametrize("url", ["/storages/add/", "/databases/add/", "/databases/app/edit/"])
def test_only_admins_edit_databases_and_storages(client, viewer, operator, panel_admin, source_database, url):
    for user in (viewer, operator):
        client.force_login(user)
        assert client.get(url).status_code == 403
    client.force_login(panel_admin)
    assert client.get(url).status_code == 200


def test_overview_empty_state_tells_what_to_do_next(admin_client):
    body = admin_client.get("/").content.decode()
    assert "No database is protected yet" in body and "Add a database" in body


def test_posts_without_a_csrf_token_fail(operator, source_database):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post(f"/databases/{source_database.name}/backup/").status_code == 403
    assert not BackupRun.objects.exists()
