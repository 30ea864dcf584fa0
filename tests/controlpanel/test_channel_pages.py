"""Alert channels managed in the panel: write-only URLs, a test message to a
local HTTP receiver, roles and the audit log."""

import json

import pytest

from controlpanel.models import AuditEvent, NotificationChannel
from tests.controlpanel.test_alerts import Receiver

pytestmark = pytest.mark.django_db

TOKEN = "channel-page-TOKEN-5521"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_an_admin_adds_tests_edits_and_deletes_a_channel(client, panel_admin, receiver):
    client.force_login(panel_admin)
    url = f"json://127.0.0.1:{receiver.port}/hook/{TOKEN}"
    response = client.post("/channels/add/", {"name": "oncall", "url": url, "events": ["backup_failed", "wal"],
                                              "enabled": "on"})
    assert response.status_code == 302 and response["Location"] == "/channels/"
    channel = NotificationChannel.objects.get(name="oncall")
    assert channel.url == url and channel.events == ["backup_failed", "wal"]

    listing = client.get("/channels/").content.decode()
    assert "oncall" in listing and "backup_failed, wal" in listing and TOKEN not in listing
    form = client.get("/channels/oncall/edit/").content.decode()
    assert TOKEN not in form and "127.0.0.1" not in form  # write-only: not even the host comes back

    response = client.post("/channels/oncall/test/", HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert json.loads(response["HX-Trigger"])["toast"]["level"] == "success"
    assert len(receiver.on(f"/hook/{TOKEN}")) == 1 and "test alert" in receiver.received[0]["body"]

    # Saving without a URL keeps the stored one; events can be cleared to mean "all but the digest".
    client.post("/channels/oncall/edit/", {"name": "oncall", "url": "", "enabled": ""})
    channel.refresh_from_db()
    assert channel.url == url and channel.events == [] and not channel.enabled

    response = client.post("/channels/oncall/delete/", HTTP_HX_REQUEST="true")  # the button asks first (hx-confirm)
    assert response.status_code == 204 and response["HX-Redirect"] == "/channels/"
    assert not NotificationChannel.objects.exists()
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["channel.save", "channel.save", "channel.delete"]
    assert TOKEN not in json.dumps(list(AuditEvent.objects.values("summary", "details")))


def test_a_channel_that_refuses_says_so_without_its_url(client, panel_admin, receiver):
    client.force_login(panel_admin)
    receiver.close()  # nothing listens any more
    NotificationChannel.objects.create(name="dead", url=f"json://127.0.0.1:{receiver.port}/hook/{TOKEN}")
    response = client.post("/channels/dead/test/", HTTP_HX_REQUEST="true")
    toast = json.loads(response["HX-Trigger"])["toast"]
    assert toast["level"] == "error" and "did not accept" in toast["message"] and TOKEN not in toast["message"]
    assert "connection error" in toast["message"].lower()  # the reason, not "see the log"
    assert "127.0.0.1" not in toast["message"] and str(receiver.port) not in toast["message"]


def test_a_service_that_answers_an_error_gives_its_status_in_the_toast(client, panel_admin, receiver):
    client.force_login(panel_admin)
    receiver.status = 503
    NotificationChannel.objects.create(name="busy", url=f"json://hook-user:{TOKEN}@127.0.0.1:{receiver.port}/h?k={TOKEN}")
    response = client.post("/channels/busy/test/", HTTP_HX_REQUEST="true")
    message = json.loads(response["HX-Trigger"])["toast"]["message"]
    assert "503" in message and "did not accept" in message
    for secret in (TOKEN, "hook-user", "127.0.0.1", str(receiver.port)):
        assert secret not in message


def test_the_cli_test_gives_the_reason_too(panel_admin, receiver):
    from django.core.management import CommandError, call_command

    receiver.status = 404
    NotificationChannel.objects.create(name="gone", url=f"json://127.0.0.1:{receiver.port}/hook/{TOKEN}")
    with pytest.raises(CommandError) as error:
        call_command("test_channel", "gone")
    assert "404" in str(error.value) and TOKEN not in str(error.value)


@pytest.mark.parametrize("data, message", [
    ({"name": "x", "url": f"nonsense-{TOKEN}"}, "apprise does not understand this URL"),
    ({"name": "has space", "url": "json://127.0.0.1/hook"}, "name"),
    ({"name": "x", "url": ""}, "This field is required"),
    ({"name": "x", "url": "json://127.0.0.1/hook", "events": ["nope"]}, "Select a valid choice"),
])
def test_bad_channels_are_refused_and_never_echo_the_url(client, panel_admin, data, message):
    client.force_login(panel_admin)
    response = client.post("/channels/add/", data)
    body = response.content.decode()
    assert response.status_code == 200 and message in body and TOKEN not in body
    assert not NotificationChannel.objects.exists()


def test_viewers_and_operators_see_channels_but_cannot_change_them(client, viewer, operator):
    NotificationChannel.objects.create(name="team", url=f"json://127.0.0.1:9/hook/{TOKEN}")
    for user in (viewer, operator):
        client.force_login(user)
        listing = client.get("/channels/").content.decode()
        assert "team" in listing and TOKEN not in listing and "Send a test" not in listing
        assert client.get("/channels/add/").status_code == 403
        assert client.post("/channels/team/edit/", {"name": "team", "url": "json://evil/"}).status_code == 403
        assert client.post("/channels/team/test/").status_code == 403
        assert client.post("/channels/team/delete/").status_code == 403
    assert NotificationChannel.objects.get().url.endswith(TOKEN)


def test_channel_names_are_plain_everywhere_even_in_the_django_admin(admin_client):
    response = admin_client.post("/admin/controlpanel/notificationchannel/add/", {
        "name": "ops/alerts", "url": "json://127.0.0.1/hook", "events": "[]", "enabled": "on"})
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert not NotificationChannel.objects.exists()
    assert admin_client.get("/channels/").status_code == 200
