"""Pages that gather every app's facts: the overview and a database's page."""

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render

from backups.models import BackupRun, Database, Storage
from backups.schedules import next_runs
from backups.views import pitr_context
from controlpanel.jobs import ACTIVE_STATES, Status
from controlpanel.roles import role_of
from controlpanel.site.overview import overview_rows
from drills.health import database_health
from drills.models import Drill, Verification


def overview(request):
    context = {
        "rows": overview_rows(),
        "storage_count": Storage.objects.count(),
        # Poll quickly while anything that changes a row is queued or running.
        "running": any(model.objects.filter(status__in=ACTIVE_STATES).exists()
                       for model in (BackupRun, Verification, Drill)),
        "role": role_of(request.user),
    }
    template = "controlpanel/partials/overview_table.html" if request.htmx else "controlpanel/overview.html"
    return render(request, template, context)


def database_detail(request, name):
    database = get_object_or_404(Database.objects.select_related("primary_storage", "policy"), name=name)
    runs = database.runs.all()
    status = request.GET.get("status")
    if status in Status.values:
        runs = runs.filter(status=status)
    page = Paginator(runs, 20).get_page(request.GET.get("page"))
    recent = list(database.runs.filter(status=Status.SUCCEEDED).order_by("-created")
                  .values("pk", "created", "size_bytes", "started", "finished")[:30])[::-1]
    drills = list(database.drills.filter(rto_seconds__isnull=False).order_by("-created")
                  .values("pk", "created", "rto_seconds")[:30])[::-1]
    policy = getattr(database, "policy", None)
    schedules = []
    if policy is not None:
        for label, cron in (("Backup", policy.dump_cron), ("Drill", policy.drill_cron)):
            schedules.append({"label": label, "cron": cron, "next": next_runs(cron, database.timezone, count=3)})
    context = {
        "database": database, "page": page, "status": status, "statuses": Status.choices,
        "health": database_health(database), "schedules": schedules, "policy": policy,
        "size_points": [(r["created"].strftime("%m-%d"), (r["size_bytes"] or 0) / 2**20) for r in recent],
        "duration_points": [(r["created"].strftime("%m-%d"), (r["finished"] - r["started"]).total_seconds())
                            for r in recent if r["started"] and r["finished"]],
        "rto_points": [(d["created"].strftime("%m-%d"), d["rto_seconds"]) for d in drills],
        "recent_runs": recent[::-1][:10],
        **pitr_context(database),
    }
    return render(request, "backups/database_detail.html", context)
