"""Within budget or not, from the last verified backup and the last drill."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import BackupRun
from controlpanel.jobs import Status
from drills.health import AMBER, GREEN, RED, database_health
from drills.models import Drill

pytestmark = pytest.mark.django_db


def good_run(database, hours_old):
    when = timezone.now() - timedelta(hours=hours_old)
    return BackupRun.objects.create(database=database, status=Status.SUCCEEDED, verified="passed",
                                    created=when, finished=when)


def test_no_verified_backup_is_red(source_database):
    health = database_health(source_database)
    assert health.color == RED and "No verified backup" in health.reasons[0]


def test_fresh_backup_and_quick_drill_are_green(source_database):
    good_run(source_database, 2)
    Drill.objects.create(database=source_database, status=Status.SUCCEEDED, rto_seconds=40, within_budget=True)
    assert database_health(source_database).color == GREEN


def test_backup_older_than_the_rpo_budget_is_red(source_database):
    good_run(source_database, 30)
    Drill.objects.create(database=source_database, status=Status.SUCCEEDED, rto_seconds=40, within_budget=True)
    health = database_health(source_database)
    assert health.color == RED and "over the 24.0 h RPO budget" in health.reasons[0]


def test_no_drill_or_a_creeping_rto_is_amber(source_database):
    good_run(source_database, 1)
    assert database_health(source_database).color == AMBER
    Drill.objects.create(database=source_database, status=Status.SUCCEEDED, rto_seconds=90, within_budget=True,
                         details={"warnings": ["RTO 90.0 s is creeping up"]})
    health = database_health(source_database)
    assert health.color == AMBER and "creeping" in health.reasons[0]


def test_a_drill_over_its_rto_budget_is_red(source_database):
    good_run(source_database, 1)
    Drill.objects.create(database=source_database, status=Status.SUCCEEDED, rto_seconds=7200, within_budget=False)
    assert database_health(source_database).color == RED


def test_a_cancelled_drill_does_not_hide_a_failed_one(source_database):
    from controlpanel.site.overview import overview_rows

    Drill.objects.create(database=source_database, status=Status.FAILED, error="row counts differ")
    Drill.objects.create(database=source_database, status=Status.CANCELLED, error="Cancelled before it finished.")
    health = database_health(source_database)
    assert health.color == RED and any("The last drill failed" in r for r in health.reasons)
    assert overview_rows()[0]["health"].color == RED
