"""Drill and restore actions and pages."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from backups.models import BackupRun, Database
from backups.pgtools import ConnInfo, PgError
from backups.pitr import recovery_window
from controlpanel.htmx import job_page
from controlpanel.jobs import Status
from drills.forms import PitrRestoreForm, RestoreForm
from drills.models import Drill, Restore, Verification
from drills.pgrestore import RestoreFailed, database_exists
from drills.restores import take_password
from drills.sandboxes import SandboxError, list_sandboxes
from drills.services import start_drill, start_pitr_restore, start_restore, start_verification


@require_POST
@permission_required("drills.run_drill", raise_exception=True)
def database_drill(request, name):
    database = get_object_or_404(Database, name=name)
    if database.last_good_run() is None:
        messages.error(request, f"{database} has no verified backup to drill with yet.")
        return redirect("database-detail", name=name)
    drill = start_drill(database, request=request)
    return redirect("drill-detail", pk=drill.pk)


@require_POST
@permission_required("drills.run_verification", raise_exception=True)
def run_verify(request, pk):
    run = get_object_or_404(BackupRun, pk=pk, status=Status.SUCCEEDED)
    if run.pruned:
        return _pruned(request, run)
    verification = start_verification(run, request=request)
    return redirect("verification-detail", pk=verification.pk)


def _pruned(request, run):
    messages.error(request, f"Backup #{run.pk} was deleted by retention; choose a newer one.")
    return redirect("run-detail", pk=run.pk)


def drill_detail(request, pk):
    drill = get_object_or_404(Drill.objects.select_related("database", "source_run", "storage"), pk=pk)
    return job_page(request, drill, "drills/partials/drill_progress.html", heading=f"Restore drill #{drill.pk}",
                    parent=drill.database.name, parent_url=reverse("database-detail", args=[drill.database.name]))


def verification_detail(request, pk):
    verification = get_object_or_404(Verification.objects.select_related("run__database"), pk=pk)
    return job_page(request, verification, "drills/partials/verification_progress.html",
                    heading=f"Verification #{verification.pk}", parent=f"backup #{verification.run_id}",
                    parent_url=reverse("run-detail", args=[verification.run_id]))


@permission_required("drills.run_restore", raise_exception=True)
def run_restore(request, pk):
    run = get_object_or_404(BackupRun.objects.select_related("database"), pk=pk, status=Status.SUCCEEDED)
    if run.pruned:
        return _pruned(request, run)
    form = RestoreForm(request.POST or None, initial={"target_database": run.database}, source_name=run.database.name)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if data["target"] == Restore.Target.NEW_DATABASE:
            try:
                exists = database_exists(ConnInfo.of(data["target_database"]), data["target_dbname"])
            except (PgError, RestoreFailed) as exc:
                form.add_error(None, str(exc))
                exists = None
            if exists and data["confirmation"] != data["target_dbname"]:
                form.add_error("confirmation", f"Database {data['target_dbname']!r} exists: type its name to "
                                               "confirm it will be dropped and replaced.")
        if not form.errors:
            restore = start_restore(
                run, target=data["target"], user=request.user, keep_hours=data["keep_hours"],
                target_database=data["target_database"], target_dbname=data["target_dbname"],
                tables=data["tables"], confirmation=data["confirmation"], request=request,
            )
            return redirect("restore-detail", pk=restore.pk)
    return render(request, "drills/restore_form.html", {"form": form, "run": run})


@permission_required("drills.view_restore", raise_exception=True)
def restore_detail(request, pk):
    restore = get_object_or_404(Restore.objects.select_related("database", "source_run", "requested_by"), pk=pk)
    password = ""
    if restore.status == Status.SUCCEEDED and request.user == restore.requested_by:
        password = take_password(restore)
    return job_page(request, restore, "drills/partials/restore_progress.html", heading=f"Restore #{restore.pk}",
                    parent=restore.database.name, parent_url=reverse("database-detail", args=[restore.database.name]),
                    password=password)


@permission_required("drills.run_restore", raise_exception=True)
def database_pitr_restore(request, name):
    database = get_object_or_404(Database.objects.select_related("pitr"), name=name, pitr__enabled__isnull=False)
    window = recovery_window(database.pitr)
    form = PitrRestoreForm(request.POST or None, database=database, window=window)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        restore = start_pitr_restore(database, None if data["latest"] else data["target_time"],
                                     keep_hours=data["keep_hours"], user=request.user, request=request)
        return redirect("restore-detail", pk=restore.pk)
    return render(request, "drills/pitr_restore_form.html",
                  {"form": form, "database": database, "setup": database.pitr, "window": window})


@require_POST
@permission_required("drills.run_drill", raise_exception=True)
def database_pitr_drill(request, name):
    database = get_object_or_404(Database.objects.select_related("pitr"), name=name, pitr__enabled__isnull=False)
    drill = start_drill(database, request=request, details={"pitr": True})
    return redirect("drill-detail", pk=drill.pk)


def sandbox_list(request):
    """The sandboxes on this host: kept restores may outlive the panel, so say which, and until when.
    Connection details as the restore page shows them; never a password."""
    try:
        sandboxes, problem = list_sandboxes(), ""
    except SandboxError as exc:  # the Docker backend without an engine
        sandboxes, problem = [], str(exc)
    restores = Restore.objects.in_bulk([s.job_pk for s in sandboxes if s.job_kind == "restore"])
    rows = [(s, restores.get(s.job_pk) if s.job_kind == "restore" else None) for s in sandboxes]
    return render(request, "drills/sandbox_list.html", {
        "rows": rows, "problem": problem, "reap_minutes": max(1, settings.SANDBOX_REAP_SECONDS // 60)})
