"""Alerts reach a local HTTP receiver standing in for the chat services and
the heartbeat service: exactly once, with the database, what failed and a
link, and never a secret."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.utils import timezone

from backups.models import BackupRun
from backups.services import create_backup_run
from controlpanel.jobs import Status
from controlpanel.models import NotificationChannel
from drills.models import Drill
from drills.tasks import check_staleness, heartbeat
from tests.conftest import psql

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "alert-test-Pw-7781"
S3_SECRET = "alert-test-S3-secret-9921"


class Receiver:
    """A local HTTP endpoint that records what it is sent."""

    def __init__(self, status: int = 200):
        received = self.received = []
        outer = self
        self.status = status  # what it answers: set 500 to play a service that refuses

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append({"path": self.path, "body": body.decode("utf-8", "replace")})
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def on(self, path):
        return [r for r in self.received if r["path"].startswith(path)]

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver(settings):
    r = Receiver()
    settings.HEARTBEAT_URL = f"http://127.0.0.1:{r.port}/ping/check-uuid"
    settings.BASE_URL = "https://panel.example.com"
    NotificationChannel.objects.create(name="chat", url=f"json://127.0.0.1:{r.port}/chat")
    yield r
    r.close()


def alerts(receiver):
    return [json.loads(r["body"]) for r in receiver.on("/chat")]


def assert_no_secret(receiver, caplog):
    everything = " ".join(r["body"] for r in receiver.received) + caplog.text
    assert PASSWORD not in everything and S3_SECRET not in everything


def test_a_failed_backup_alerts_once_with_database_reason_and_link(receiver, source_database, caplog):
    source_database.password = PASSWORD
    source_database.port = 1
    source_database.save()
    run = create_backup_run(source_database)
    run.execute(inline=True)
    sent = alerts(receiver)
    assert len(sent) == 1
    assert "app" in sent[0]["title"] and "unreachable" in sent[0]["message"]
    assert f"https://panel.example.com/runs/{run.pk}/" in sent[0]["message"]
    assert receiver.on("/ping") == []
    assert "event=backup_failed" in caplog.text and f"run={run.pk}" in caplog.text
    assert_no_secret(receiver, caplog)


@pytest.fixture
def verified(receiver, source_database, s3_storage):
    psql(source_database.dbname, "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 50)")
    s3_storage.secret_access_key = S3_SECRET
    s3_storage.save()
    source_database.offsite_storages.add(s3_storage)
    run = create_backup_run(source_database)
    run.execute(inline=True)
    run.refresh_from_db()
    assert run.verified == "passed"
    return run


def test_the_heartbeat_arrives_after_a_verified_backup_and_stops_when_backups_stop(verified, receiver):
    assert len(receiver.on("/ping/check-uuid")) == 1
    assert alerts(receiver) == []
    assert heartbeat() is True
    assert len(receiver.on("/ping")) == 2
    BackupRun.objects.update(created=timezone.now() - timedelta(days=3), finished=timezone.now() - timedelta(days=3))
    assert heartbeat() is False  # backups stopped: silence, and the outside check alarms
    assert len(receiver.on("/ping")) == 2


def test_a_corrupt_offsite_copy_alerts_once(verified, receiver, s3_storage, s3_client, caplog):
    from drills.models import Verification

    artifact = verified.artifacts.get(storage=s3_storage, name="full.dump.zst")
    body = bytearray(s3_client.get_object(Bucket=s3_storage.bucket, Key=artifact.key)["Body"].read())
    body[10] ^= 1
    s3_client.put_object(Bucket=s3_storage.bucket, Key=artifact.key, Body=bytes(body))
    verification = (Verification.objects.create(run=verified, kind="periodic",
                                                                     checksums_only=True)).execute()
    sent = alerts(receiver)
    assert len(sent) == 1
    assert "offsite" in sent[0]["message"] and artifact.key in sent[0]["message"]
    assert f"/verifications/{verification.pk}/" in sent[0]["message"]
    assert_no_secret(receiver, caplog)


def test_a_drill_over_budget_alerts_once(verified, receiver):
    database = verified.database
    database.rto_budget_seconds = 0
    database.save()
    drill = (Drill.objects.create(database=database)).execute()
    assert drill.status == Status.SUCCEEDED
    sent = alerts(receiver)
    assert len(sent) == 1 and "over the 0 s budget" in sent[0]["message"]
    assert f"/drills/{drill.pk}/" in sent[0]["message"]


def test_a_stale_database_alerts_once_not_on_every_check(verified, receiver):
    BackupRun.objects.update(finished=timezone.now() - timedelta(days=2))
    assert check_staleness() == 1
    assert check_staleness() == 1
    sent = alerts(receiver)
    assert len(sent) == 1 and "has no verified backup for 48" in sent[0]["message"]


def test_channel_cli_reads_the_url_from_the_environment(receiver, monkeypatch, capsys):
    monkeypatch.setenv("OPS_URL", f"json://127.0.0.1:{receiver.port}/ops")
    call_command("add_channel", "ops", "--url-env", "OPS_URL", "--events", "backup_failed", "stale")
    call_command("test_channel", "ops")
    assert len(receiver.on("/ops")) == 1
    channel = NotificationChannel.objects.get(name="ops")
    assert channel.wants("stale") and not channel.wants("drill_failed")
