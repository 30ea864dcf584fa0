"""Editing a database's schedules in the panel: beat rows follow, bad crons are refused."""

import pytest
from django_celery_beat.models import PeriodicTask

from controlpanel.models import AuditEvent

pytestmark = pytest.mark.django_db

VALID = {"dump_cron": "45  1 * * *", "drill_cron": "0 6 1-7 * 6", "compression": "zstd", "compression_level": "3",
         "enabled": "on"}


def test_an_admin_edits_the_schedules_and_beat_follows(client, source_database, panel_admin):
    source_database.timezone = "Europe/Berlin"
    source_database.save()
    client.force_login(panel_admin)
    page = client.get("/databases/app/").content.decode()
    assert 'id="edit-schedule"' in page

    response = client.post("/databases/app/schedule/", VALID)
    assert response.status_code == 302 and response["Location"] == "/databases/app/"
    policy = source_database.policy
    policy.refresh_from_db()
    assert policy.dump_cron == "45 1 * * *" and policy.compression_level == 3  # whitespace normalised
    dump = PeriodicTask.objects.get(name="app: dump")
    assert (dump.crontab.minute, dump.crontab.hour, str(dump.crontab.timezone)) == ("45", "1", "Europe/Berlin")
    drill = PeriodicTask.objects.get(name="app: drill")
    assert (drill.crontab.day_of_month, drill.crontab.day_of_week) == ("1-7", "6") and drill.enabled
    event = AuditEvent.objects.get(action="policy.save")
    assert event.user == panel_admin and event.details["dump_cron"] == "45 1 * * *"
    page = client.get("/databases/app/").content.decode()
    assert "45 1 * * *" in page and "01:45" in page  # next runs in the database's time zone, not the panel's
    assert "01:45 CE" in client.get("/").content.decode()  # the overview names the zone (CET or CEST)

    client.post("/databases/app/schedule/", {**VALID, "enabled": ""})
    assert not PeriodicTask.objects.get(name="app: dump").enabled
    assert not PeriodicTask.objects.get(name="app: drill").enabled
    assert "paused" in client.get("/databases/app/").content.decode()


@pytest.mark.parametrize("changes, message", [
    ({"dump_cron": "0 0 31 2 *"}, "never fires"),
    ({"dump_cron": "every day"}, "5 fields"),
    ({"drill_cron": "61 * * * *"}, "Invalid cron field"),
    ({"compression": "gzip", "compression_level": "12"}, "gzip levels go from 1 to 9"),
    ({"compression": "none", "compression_level": "3"}, "No compression has no level"),
])
def test_bad_schedules_are_refused_with_the_reason(client, source_database, panel_admin, changes, message):
    client.force_login(panel_admin)
    before = PeriodicTask.objects.get(name="app: dump").crontab_id
    response = client.post("/databases/app/schedule/", {**VALID, **changes})
    assert response.status_code == 200 and message in response.content.decode()
    assert PeriodicTask.objects.get(name="app: dump").crontab_id == before
    assert not AuditEvent.objects.filter(action="policy.save").exists()


def test_only_admins_edit_schedules(client, source_database, viewer, operator):
    for user in (viewer, operator):
        client.force_login(user)
        assert 'id="edit-schedule"' not in client.get("/databases/app/").content.decode()
        assert client.get("/databases/app/schedule/").status_code == 403
        assert client.post("/databases/app/schedule/", VALID).status_code == 403
    source_database.policy.refresh_from_db()
    assert source_database.policy.dump_cron == "15 3 * * *"


def test_the_next_runs_preview_follows_the_typed_expression(client, viewer):
    assert client.get("/schedules/next-runs/?cron=0+3+*+*+*").status_code == 302  # login first
    client.force_login(viewer)
    body = client.get("/schedules/next-runs/", {"dump_cron": "30 4 * * 1", "tz": "America/New_York"}).content.decode()
    assert body.count("Mon") == 5 and "04:30" in body and "America/New_York" in body
    body = client.get("/schedules/next-runs/", {"drill_cron": "0 0 30 2 *", "tz": "UTC"}).content.decode()
    assert "never fires" in body
    body = client.get("/schedules/next-runs/", {"cron": "0 3 * * *", "tz": "Mars/Olympus"}).content.decode()
    assert "Unknown time zone" in body


def test_a_renamed_database_keeps_one_set_of_schedules(client, source_database, panel_admin):
    from django.utils import timezone

    from backups.models import PitrSetup

    PitrSetup.objects.create(database=source_database, stanza="app", repo_path="/tmp/unused", enabled=timezone.now())
    before = set(PeriodicTask.objects.values_list("name", flat=True))
    assert {"app: dump", "app: drill", "app: base backup full"} <= before
    source_database.name = "shop"
    source_database.save()
    after = set(PeriodicTask.objects.values_list("name", flat=True))
    assert not [n for n in after if n.startswith("app: ")]
    assert {n.replace("app: ", "shop: ") for n in before if n.startswith("app: ")} <= after
    client.force_login(panel_admin)
    client.post("/databases/shop/schedule/", {**VALID, "enabled": ""})  # pausing reaches every row of the database
    assert not PeriodicTask.objects.filter(name__in=["shop: dump", "shop: drill"], enabled=True).exists()
    pk = source_database.pk
    source_database.delete()
    assert not PeriodicTask.objects.filter(args=f"[{pk}]").exists()


def test_schema_diff_with_padded_ids_is_not_a_500(client, source_database, viewer):
    from backups.models import BackupRun

    runs = [BackupRun.objects.create(database=source_database, status="succeeded") for _ in range(2)]
    client.force_login(viewer)
    response = client.get(f"/databases/app/schema-diff/?a=0{runs[0].pk}&b={runs[1].pk}")
    assert response.status_code == 200 and "has no schema.sql left" in response.content.decode()
    response = client.get(f"/databases/app/schema-diff/?a={runs[0].pk}&b=0{runs[0].pk}")
    assert response.status_code == 200 and "Choose two backups" in response.content.decode()


def test_the_pitr_drill_follows_an_edited_drill_schedule(client, source_database, panel_admin):
    from django.utils import timezone

    from backups.models import PitrSetup

    PitrSetup.objects.create(database=source_database, stanza="app", repo_path="/tmp/unused", enabled=timezone.now())
    client.force_login(panel_admin)
    client.post("/databases/app/schedule/", {**VALID, "drill_cron": "30 9 * * 3"})
    row = PeriodicTask.objects.get(name="app: pitr drill")
    assert (row.crontab.minute, row.crontab.hour, row.crontab.day_of_week) == ("30", "10", "3")  # an hour later
    source_database.timezone = "Asia/Tokyo"
    source_database.save()
    assert str(PeriodicTask.objects.get(name="app: base backup full").crontab.timezone) == "Asia/Tokyo"
