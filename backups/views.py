"""Pages for storages, databases and backup runs."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from backups.forms import DatabaseForm, StorageForm
from backups.models import BackupRun, Database, Storage
from backups.services import AlreadyRunning, start_backup
from backups.storage import StorageError, backend_for
from controlpanel.models import AuditEvent, Status


def toast(response: HttpResponse, message: str, level: str = "info") -> HttpResponse:
    response["HX-Trigger"] = json.dumps({"toast": {"message": message, "level": level}})
    return response


def storage_list(request):
    return render(request, "backups/storage_list.html", {"storages": Storage.objects.all()})


@permission_required("backups.add_storage", raise_exception=True)
def storage_add(request):
    return _storage_form(request, Storage())


@permission_required("backups.change_storage", raise_exception=True)
def storage_edit(request, name):
    return _storage_form(request, get_object_or_404(Storage, name=name))


def _storage_form(request, storage):
    form = StorageForm(request.POST or None, instance=storage)
    if request.method == "POST" and form.is_valid():
        storage = form.save()
        AuditEvent.record("storage.save", f"Storage {storage} saved", obj=storage, request=request)
        messages.success(request, f"Storage {storage} saved.")
        return redirect("storage-list")
    return render(request, "backups/storage_form.html", {"form": form, "storage": storage})


@require_POST
@permission_required("backups.change_storage", raise_exception=True)
def storage_test(request, name):
    storage = get_object_or_404(Storage, name=name)
    try:
        backend_for(storage).test()
    except StorageError as exc:
        return toast(HttpResponse(status=204), f"Storage {storage}: {exc}", "error")
    return toast(HttpResponse(status=204), f"Storage {storage} works: wrote, read and deleted a test object.", "success")


@permission_required("backups.add_database", raise_exception=True)
def database_add(request):
    if not Storage.objects.exists():
        messages.info(request, "Add a storage first: backups need somewhere to go.")
        return redirect("storage-add")
    return _database_form(request, Database())


@permission_required("backups.change_database", raise_exception=True)
def database_edit(request, name):
    return _database_form(request, get_object_or_404(Database, name=name))


def _database_form(request, database):
    form = DatabaseForm(request.POST or None, instance=database)
    if request.method == "POST" and form.is_valid():
        database = form.save()
        AuditEvent.record("database.save", f"Database {database} saved", obj=database, request=request)
        messages.success(request, f"Database {database} saved.")
        return redirect("database-detail", name=database.name)
    return render(request, "backups/database_form.html", {"form": form, "database": database})


def database_detail(request, name):
    database = get_object_or_404(Database.objects.select_related("primary_storage"), name=name)
    runs = database.runs.all()
    status = request.GET.get("status")
    if status in Status.values:
        runs = runs.filter(status=status)
    page = Paginator(runs, 20).get_page(request.GET.get("page"))
    context = {"database": database, "page": page, "status": status, "statuses": Status.choices,
               "last_good": database.last_good_run()}
    return render(request, "backups/database_detail.html", context)


@require_POST
@permission_required("backups.run_backup", raise_exception=True)
def database_backup(request, name):
    database = get_object_or_404(Database, name=name)
    try:
        run = start_backup(database, request=request)
    except AlreadyRunning as exc:
        if request.htmx:
            return toast(HttpResponse(status=204), str(exc), "error")
        messages.error(request, str(exc))
        return redirect("run-detail", pk=exc.run.pk)
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = run_url(run)
        return toast(response, f"Backup of {database} queued.", "success")
    return redirect("run-detail", pk=run.pk)


def run_url(run) -> str:
    from django.urls import reverse

    return reverse("run-detail", args=[run.pk])


def run_detail(request, pk):
    run = get_object_or_404(BackupRun.objects.select_related("database"), pk=pk)
    context = {"run": run, "artifacts": run.artifacts.select_related("storage")}
    if request.htmx:
        response = render(request, "backups/partials/run_progress.html", context)
        if not run.is_active:
            response.status_code = 286  # htmx stops polling
        return response
    return render(request, "backups/run_detail.html", context)
