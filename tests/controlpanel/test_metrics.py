"""/metrics parses as Prometheus text and needs the token or an allowed address."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backups.models import BackupRun
from controlpanel.jobs import Status
from drills.models import Drill

pytestmark = pytest.mark.django_db


def test_metrics_need_the_token(client, settings, source_database):
    settings.METRICS_TOKEN = "scrape-token-1"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-1").status_code == 200


def test_metrics_parse_and_carry_the_database_facts(client, settings, source_database):
    settings.METRICS_TOKEN = "scrape-token-1"
    from django.utils import timezone

    now = timezone.now()
    BackupRun.objects.create(database=source_database, status=Status.SUCCEEDED, verified="passed",
                             started=now, finished=now, size_bytes=12345)
    Drill.objects.create(database=source_database, status=Status.SUCCEEDED, rto_seconds=42.5, within_budget=True)
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-1").content.decode()
    samples = {(s.name, s.labels.get("database", s.labels.get("kind")), s.labels.get("status")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("restorable_last_drill_rto_seconds", "app", None)] == 42.5
    assert samples[("restorable_last_backup_size_bytes", "app", None)] == 12345
    assert samples[("restorable_last_backup_verified", "app", None)] == 1
    assert ("restorable_rpo_exposure_seconds", "app", None) in samples
    assert samples[("restorable_jobs", "backuprun", "succeeded")] == 1
    assert samples[("restorable_queue_depth", "backuprun", None)] == 0
