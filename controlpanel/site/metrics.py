"""Prometheus /metrics, read from the database at scrape time."""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.db.models import Count
from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from backups.models import BackupRun
from controlpanel.jobs import Status, job_models
from drills.health import fleet_health


class PanelCollector:
    def collect(self):
        gauges = {
            "last_verified": GaugeMetricFamily("restorable_last_verified_backup_timestamp_seconds",
                                               "When the last verified backup finished", labels=["database"]),
            "rpo_age": GaugeMetricFamily("restorable_rpo_exposure_seconds",
                                         "Age of the last verified backup", labels=["database"]),
            "rpo_budget": GaugeMetricFamily("restorable_rpo_budget_seconds", "RPO budget", labels=["database"]),
            "rto": GaugeMetricFamily("restorable_last_drill_rto_seconds", "RTO measured by the last drill",
                                     labels=["database"]),
            "rto_budget": GaugeMetricFamily("restorable_rto_budget_seconds", "RTO budget", labels=["database"]),
            "drill_ok": GaugeMetricFamily("restorable_last_drill_success", "1 when the last drill passed",
                                          labels=["database"]),
            "verified": GaugeMetricFamily("restorable_last_backup_verified", "1 passed, 0 failed, -1 pending",
                                          labels=["database"]),
            "health": GaugeMetricFamily("restorable_health", "0 green, 1 amber, 2 red", labels=["database"]),
        }
        for db, health in fleet_health():
            name = db.name
            if db.last_good_finished:
                gauges["last_verified"].add_metric([name], db.last_good_finished.timestamp())
            if health.rpo_age_seconds is not None:
                gauges["rpo_age"].add_metric([name], health.rpo_age_seconds)
            gauges["rpo_budget"].add_metric([name], db.rpo_budget_seconds)
            gauges["rto_budget"].add_metric([name], db.rto_budget_seconds)
            if db.last_drill_rto is not None:
                gauges["rto"].add_metric([name], db.last_drill_rto)
            if db.last_drill_id:
                gauges["drill_ok"].add_metric([name], 1 if db.last_drill_status == Status.SUCCEEDED else 0)
            if db.last_run_id:
                gauges["verified"].add_metric([name], {"passed": 1, "failed": 0}.get(db.last_run_verified, -1))
            gauges["health"].add_metric([name], {"green": 0, "amber": 1, "red": 2}[health.color])
        yield from gauges.values()

        size = GaugeMetricFamily("restorable_last_backup_size_bytes", "Size of the last succeeded backup",
                                 labels=["database"])
        duration = GaugeMetricFamily("restorable_last_backup_duration_seconds", "Duration of the last succeeded backup",
                                     labels=["database"])
        last = (BackupRun.objects.filter(status=Status.SUCCEEDED).order_by("database_id", "-created")
                .distinct("database_id") if _postgres() else None)
        for run in (last.select_related("database") if last is not None else []):
            if run.size_bytes:
                size.add_metric([run.database.name], run.size_bytes)
            if run.started and run.finished:
                duration.add_metric([run.database.name], (run.finished - run.started).total_seconds())
        yield size
        yield duration

        jobs = GaugeMetricFamily("restorable_jobs", "Jobs by kind and status", labels=["kind", "status"])
        for model in job_models():
            kind = model._meta.model_name
            assert kind is not None  # every concrete model has one
            for row in model._default_manager.values("status").annotate(n=Count("pk")):
                jobs.add_metric([kind, row["status"]], row["n"])
        yield jobs
        queued = GaugeMetricFamily("restorable_queue_depth", "Jobs waiting for a worker", labels=["kind"])
        for model in job_models():
            kind = model._meta.model_name
            assert kind is not None  # every concrete model has one
            queued.add_metric([kind], model._default_manager.filter(status=Status.QUEUED).count())
        yield queued


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        return request.headers.get("Authorization", "") == f"Bearer {token}"
    return request.META.get("REMOTE_ADDR") in settings.METRICS_ALLOW


@login_not_required
@never_cache
def metrics(request):
    """Protected by RESTORABLE_METRICS_TOKEN (Bearer) or else an address allowlist."""
    if not allowed(request):
        return HttpResponseForbidden("metrics need the bearer token or an allowed address\n")
    registry = CollectorRegistry()
    registry.register(PanelCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
