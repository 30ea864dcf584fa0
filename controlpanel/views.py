"""Health endpoints, the audit log, alert channels and cancelling jobs."""

from django.apps import apps
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from controlpanel.celery import app
from controlpanel.forms import ChannelForm
from controlpanel.htmx import toast
from controlpanel.models import AuditEvent, NotificationChannel
from controlpanel.notify import send_test


@login_not_required
@never_cache
def health_live(request):
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
def health_ready(request):
    """Ready when the metadata database and the broker answer."""
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

    page = Paginator(AuditEvent.objects.select_related("user"), 50).get_page(request.GET.get("page"))
    return render(request, "controlpanel/audit_log.html", {"page": page})


def channel_list(request):
    return render(request, "controlpanel/channel_list.html", {"channels": NotificationChannel.objects.all()})


@permission_required("controlpanel.add_notificationchannel", raise_exception=True)
def channel_add(request):
    return _channel_form(request, NotificationChannel())


@permission_required("controlpanel.change_notificationchannel", raise_exception=True)
def channel_edit(request, name):
    return _channel_form(request, get_object_or_404(NotificationChannel, name=name))


def _channel_form(request, channel):
    form = ChannelForm(request.POST or None, instance=channel)
    if request.method == "POST" and form.is_valid():
        channel = form.save()
        AuditEvent.record("channel.save", f"Notification channel {channel} saved", obj=channel, request=request,
                          events=channel.events, enabled=channel.enabled)
        messages.success(request, f"Channel {channel} saved.")
        return redirect("channel-list")
    return render(request, "controlpanel/channel_form.html", {"form": form, "channel": channel})


@require_POST
@permission_required("controlpanel.change_notificationchannel", raise_exception=True)
def channel_test(request, name):
    channel = get_object_or_404(NotificationChannel, name=name)
    reason = send_test(channel)
    if reason is None:
        return toast(HttpResponse(status=204), f"Channel {channel}: test message sent.", "success")
    return toast(HttpResponse(status=204),
                 f"Channel {channel}: the service did not accept the test message: {reason}", "error")


@require_POST
@permission_required("controlpanel.delete_notificationchannel", raise_exception=True)
def channel_delete(request, name):
    channel = get_object_or_404(NotificationChannel, name=name)
    AuditEvent.record("channel.delete", f"Notification channel {channel} deleted", request=request)
    channel.delete()
    messages.success(request, f"Channel {name} deleted.")
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse("channel-list")
        return response
    return redirect("channel-list")


# What can be cancelled: URL kind -> (model, permission needed, page of the job).
CANCELLABLE = {
    "runs": ("backups.BackupRun", "backups.run_backup", "run-detail"),
    "verifications": ("drills.Verification", "drills.run_verification", "verification-detail"),
    "drills": ("drills.Drill", "drills.run_drill", "drill-detail"),
    "restores": ("drills.Restore", "drills.run_restore", "restore-detail"),
    "base-backups": ("backups.BaseBackup", "backups.run_base_backup", None),
}

@require_POST
def job_cancel(request, kind, pk):

    if kind not in CANCELLABLE:
        raise Http404("Nothing of that kind can be cancelled.")
    label, permission, page = CANCELLABLE[kind]
    if not request.user.has_perm(permission):
        raise PermissionDenied
    job = get_object_or_404(apps.get_model(label), pk=pk)
    outcome, message = job.cancel(request=request)
    level = "info" if outcome == "ended" else "success"
    if request.htmx:
        return toast(HttpResponse(status=204), message, level)
    getattr(messages, level)(request, message)
    return redirect(reverse(page, args=[job.pk]) if page else reverse("database-detail", args=[job.database.name]))
