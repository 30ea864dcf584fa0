"""The overview page and health endpoints."""

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from backups.models import BackupRun, Storage
from controlpanel.roles import role_of


def overview(request):
    from controlpanel.overview import overview_rows

    context = {
        "rows": overview_rows(),
        "storage_count": Storage.objects.count(),
        "running": BackupRun.objects.filter(status__in=("queued", "running")).count(),
        "role": role_of(request.user),
    }
    template = "controlpanel/partials/overview_table.html" if request.htmx else "controlpanel/overview.html"
    return render(request, template, context)


@login_not_required
@never_cache
def health_live(request):
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
def health_ready(request):
    """Ready when the metadata database and the broker answer."""
    from controlpanel.celery import app

    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if ok else "unavailable", **checks}, status=200 if ok else 503)


def audit_log(request):
    from django.core.paginator import Paginator

    from controlpanel.models import AuditEvent

    page = Paginator(AuditEvent.objects.select_related("user"), 50).get_page(request.GET.get("page"))
    return render(request, "controlpanel/audit_log.html", {"page": page})
