"""An idle panel is quiet: no line per housekeeping tick, no kombu warning at
start, no 404 for the favicon; a directory that cannot be made stops the start
naming its variable."""

import logging
import os
import subprocess
import sys
import time

import httpx
import pytest
from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS

from controlpanel.logfilters import QuietHousekeeping
from tests.controlpanel.test_quickstart import panel  # noqa: F401
from tests.controlpanel.test_settings import start_django


def record(logger: str, level: int, message: str, args) -> logging.LogRecord:
    return logging.LogRecord(logger, level, __file__, 1, message, args, None)


def test_routine_lines_of_housekeeping_tasks_are_dropped_and_the_rest_kept():
    quiet = QuietHousekeeping()
    reap = "controlpanel.tasks.reap_dead_jobs"
    assert not quiet.filter(record("celery.beat", logging.INFO, "Scheduler: Sending due task %s (%s)",
                                   ("restorable: reap dead jobs", reap)))
    assert not quiet.filter(record("celery.worker.strategy", logging.INFO, LOG_RECEIVED, {"name": reap, "id": "x"}))
    assert not quiet.filter(record("celery.app.trace", logging.INFO, LOG_SUCCESS,
                                   {"name": reap, "id": "x", "runtime": 0.01, "return_value": 0}))
    # A backup's lines, a failure of the reaper, and what the reaper itself says are kept.
    assert quiet.filter(record("celery.app.trace", logging.INFO, LOG_SUCCESS,
                               {"name": "backups.tasks.backup", "id": "x", "runtime": 3.2, "return_value": None}))
    assert quiet.filter(record("celery.app.trace", logging.ERROR, "Task %(name)s[%(id)s] raised",
                               {"name": reap, "id": "x"}))
    assert quiet.filter(record("controlpanel.tasks", logging.WARNING, "reaped %d %s", (1, "backup runs")))


@pytest.mark.slow
def test_an_idle_panel_prints_nothing_after_it_started(panel):  # noqa: F811
    base, env, proc, tmp_path = panel
    log = tmp_path / "up.log"
    deadline = time.monotonic() + 60
    while not (b"ready." in log.read_bytes() and b"beat: Starting" in log.read_bytes()):
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    assert httpx.get(base + "/favicon.ico", follow_redirects=True).status_code == 200
    started = len(log.read_bytes())
    # Absence cannot be awaited: watch three ticks of the reaper (every 5 s here).
    time.sleep(16)
    text = log.read_text()
    assert "No hostname was supplied" not in text
    idle = [line for line in text[started:].splitlines()
            if "GET /favicon.ico" not in line and "GET /static/" not in line]
    assert not any("reap_dead_jobs" in line or "Sending due task" in line for line in idle), idle[:20]


def test_the_favicon_needs_no_login(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")


@pytest.mark.parametrize("data_dir", ["/proc/restorable-data", "/etc/hostname/data"])
def test_a_data_dir_that_cannot_be_made_names_the_variable(tmp_path, data_dir):
    with_keys = {"DJANGO_SECRET_KEY": "x" * 50, "RESTORABLE_SECRETS_KEY": "A" * 43 + "="}
    for variables in ({}, with_keys):
        result = start_django(tmp_path, **variables, RESTORABLE_DATA_DIR=data_dir)
        assert result.returncode != 0
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("django.core.exceptions.ImproperlyConfigured: RESTORABLE_DATA_DIR"), result.stderr
        assert data_dir in last


def test_the_daily_digest_runs(db):
    from backups.tasks import daily_digest

    assert daily_digest() == 0  # no backups: it says so, and needs nothing imported by accident


def test_the_embedded_broker_url_carries_a_host():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    out = subprocess.run([sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE']="
                          "'controlpanel.settings'; django.setup(); from controlpanel.celery import app; "
                          "print(app.connection_for_write().as_uri())"],
                         capture_output=True, text=True, env={**env, "CELERY_BROKER_URL": "filesystem://"})
    assert out.returncode == 0, out.stderr
    assert "No hostname was supplied" not in out.stderr and out.stdout.startswith("filesystem://")
