"""Pages for storages, databases and backup runs."""

import difflib
import re

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from backups.forms import DatabaseForm, PolicyForm, StorageForm, validate_cron, validate_timezone
from backups.models import Artifact, BackupPolicy, BackupRun, BaseBackup, Database, PitrSetup, Storage
from backups.pitr import recovery_window
from backups.schedules import next_runs
from backups.services import (
    AlreadyRunning,
    StorageInUse,
    check_storage,
    delete_storage,
    save_storage,
    start_backup,
    start_base_backup,
)
from backups.storage import StorageError, backend_for
from controlpanel.htmx import job_page, poll, toast
from controlpanel.jobs import ACTIVE_STATES, Status
from controlpanel.models import AuditEvent


def storage_list(request):
    return render(request, "backups/storage_list.html", {"storages": Storage.objects.all()})


@permission_required("backups.add_storage", raise_exception=True)
def storage_add(request):
    return _storage_form(request, Storage())


@permission_required("backups.change_storage", raise_exception=True)
def storage_edit(request, name):
    return _storage_form(request, get_object_or_404(Storage, name=name))


def _storage_form(request, storage):
    heading = f"Edit storage {storage.name}" if storage.pk else "Add a storage"
    form = StorageForm(request.POST or None, instance=storage)
    if request.method == "POST" and form.is_valid():
        test = not form.cleaned_data["save_without_testing"]
        try:
            storage = save_storage(form.save(commit=False), test=test, request=request)
        except StorageError as exc:
            # Secrets are never rendered back: keys typed in this attempt must be typed again.
            typed = any(form.data.get(name) for name in ("access_key_id", "secret_access_key"))
            again = " Type the access keys again." if typed else ""
            form.add_error(None, f"Not saved: {exc} Fix it, or tick \"Save without testing\".{again}")
        else:
            if test:
                messages.success(request, f"Storage {storage} saved: {tested(storage)}")
            else:
                messages.warning(request, f"Storage {storage} saved without testing: press Test once it can be "
                                          "reached (that also applies its bucket lifecycle rule).")
            return redirect("storage-list")
    return render(request, "backups/storage_form.html", {"form": form, "storage": storage, "heading": heading})


def tested(storage) -> str:
    rule = (f"; bucket lifecycle rule set to {storage.lifecycle_days} days"
            if storage.kind == Storage.Kind.S3 and storage.lifecycle_days else "")
    return f"wrote, read and deleted a test object{rule}."


@require_POST
@permission_required("backups.change_storage", raise_exception=True)
def storage_test(request, name):
    storage = get_object_or_404(Storage, name=name)
    try:
        check_storage(storage)
    except StorageError as exc:
        return toast(HttpResponse(status=204), f"Storage {storage}: {exc}", "error")
    return toast(HttpResponse(status=204), f"Storage {storage} works: {tested(storage)}", "success")


@require_POST
@permission_required("backups.delete_storage", raise_exception=True)
def storage_delete(request, name):
    """Delete a storage's row (never its files), refused with the reason while anything needs it."""
    storage = get_object_or_404(Storage, name=name)
    try:
        delete_storage(storage, request=request)
    except StorageInUse as exc:
        if request.htmx:
            return toast(HttpResponse(status=204), str(exc), "error")
        messages.error(request, str(exc))
        return redirect("storage-list")
    messages.success(request, f"Storage {name} deleted; its files were left in place.")
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse("storage-list")
        return response
    return redirect("storage-list")


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


# pg_dump 15.14+ (and 13.22, 14.19, 16.10, 17.6) brackets plain SQL with
# `\restrict KEY` / `\unrestrict KEY`, a random key per dump: two dumps of the
# same schema always differ there, and nowhere else because of it.
RESTRICT_LINE = re.compile(r"^\\(un)?restrict [A-Za-z0-9]+$")


def schema_lines(text: str) -> tuple[list[str], bool]:
    """The schema's lines without pg_dump's per-dump \\restrict keys (and whether any were dropped)."""
    lines = text.splitlines()
    kept = [line for line in lines if not RESTRICT_LINE.match(line)]
    return kept, len(kept) != len(lines)


def schema_diff(request, name):
    """Unified diff of two backups' schema.sql, read from the primary storage; pickers when none are chosen."""
    database = get_object_or_404(Database, name=name)
    schema_runs = list(database.runs.filter(status=Status.SUCCEEDED, artifacts__name="schema.sql",
                                            artifacts__deleted_at__isnull=True).distinct().order_by("-created")[:30])
    context = {"database": database, "schema_runs": schema_runs}
    asked = [request.GET.get(key, "") for key in ("a", "b")]
    if not any(asked):
        return render(request, "backups/schema_diff.html", context)
    # "011" and "11" are the same run: compare numbers, not strings.
    wanted = [int(value) for value in asked if value.isascii() and value.isdigit() and len(value) < 19]
    runs = {r.pk: r for r in database.runs.filter(pk__in=wanted)}
    if len(wanted) != 2 or len(runs) != len(set(wanted)) or len(set(wanted)) != 2:
        return render(request, "backups/schema_diff.html", {**context, "error": "Choose two backups."})
    texts = []
    for pk in wanted:
        run = runs[pk]
        artifact = run.artifacts.filter(name="schema.sql", deleted_at__isnull=True).select_related("storage").first()
        if artifact is None:
            return render(request, "backups/schema_diff.html",
                          {**context, "error": f"Backup #{run.pk} has no schema.sql left."})
        try:
            texts.append((run, b"".join(backend_for(artifact.storage).read(artifact.key)).decode("utf-8", "replace")))
        except StorageError as exc:
            return render(request, "backups/schema_diff.html", {**context, "error": str(exc)})
    (run_a, text_a), (run_b, text_b) = texts
    (lines_a, ignored_a), (lines_b, ignored_b) = schema_lines(text_a), schema_lines(text_b)
    diff = list(difflib.unified_diff(lines_a, lines_b, f"#{run_a.pk} schema.sql", f"#{run_b.pk} schema.sql",
                                     lineterm=""))
    return render(request, "backups/schema_diff.html",
                  {**context, "diff": diff, "a": run_a, "b": run_b, "ignored": ignored_a or ignored_b})


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


@permission_required("backups.change_backuppolicy", raise_exception=True)
def database_schedule(request, name):
    database = get_object_or_404(Database, name=name)
    policy, _ = BackupPolicy.objects.get_or_create(database=database)
    form = PolicyForm(request.POST or None, instance=policy)
    if request.method == "POST" and form.is_valid():
        policy = form.save()
        changes = {field: form.cleaned_data[field] for field in form.changed_data}
        AuditEvent.record("policy.save", f"Schedules of {database} saved", obj=policy, request=request, **changes)
        messages.success(request, f"Schedules of {database} saved.")
        return redirect("database-detail", name=database.name)
    return render(request, "backups/schedule_form.html", {"form": form, "database": database})


def next_runs_preview(request):
    """The next runs of a cron expression in a time zone, as the schedule form is typed."""
    # The form sends its field as it is named (dump_cron, drill_cron).
    raw = next((request.GET[key] for key in ("cron", "dump_cron", "drill_cron") if key in request.GET), "")
    expression = " ".join(raw[:100].split())
    tz = request.GET.get("tz", "UTC")[:64]
    try:
        validate_timezone(tz)
        validate_cron(expression)
        times, error = next_runs(expression, tz, count=5), ""
    except ValidationError as exc:
        times, error = [], " ".join(exc.messages)
    return render(request, "backups/partials/next_runs.html", {"times": times, "error": error, "tz": tz})


def pitr_context(database: Database) -> dict:
    """The PITR card: archiving state, recovery window and recent base backups (cached state only)."""
    setup = PitrSetup.objects.filter(database=database).first()
    if setup is None:
        return {"pitr": None}
    base_backups = list(database.base_backups.order_by("-created")[:5])
    return {
        "pitr": setup, "window": recovery_window(setup), "base_backups": base_backups,
        "pitr_active": any(job.is_active for job in base_backups),
    }


def database_pitr(request, name):
    """The PITR card alone, polled while a base backup runs."""
    database = get_object_or_404(Database, name=name)
    context = {"database": database, **pitr_context(database)}
    return poll(request, "backups/partials/pitr_card.html", context, active=bool(context.get("pitr_active")))


@require_POST
@permission_required("backups.run_base_backup", raise_exception=True)
def database_base_backup(request, name):
    database = get_object_or_404(Database, name=name, pitr__enabled__isnull=False)
    kind = request.POST.get("kind", BaseBackup.Kind.FULL)
    if kind not in BaseBackup.Kind.values:
        kind = BaseBackup.Kind.FULL
    active = database.base_backups.filter(status__in=ACTIVE_STATES).first()
    if active is not None:
        messages.error(request, f"A base backup of {database} is already {active.status} (#{active.pk}).")
    else:
        job = start_base_backup(database, kind=kind, request=request)
        messages.success(request, f"{job.get_kind_display()} base backup #{job.pk} of {database} queued.")
    return redirect(reverse("database-detail", args=[database.name]) + "#pitr")


def run_url(run) -> str:
    return reverse("run-detail", args=[run.pk])


def run_detail(request, pk):
    run = get_object_or_404(BackupRun.objects.select_related("database"), pk=pk)
    verification = run.verifications.order_by("-created").first()
    # Keep polling until the backup is done and its verification has ended too
    # (a cancelled verification ends it, leaving the run "not verified yet").
    verifying = (run.status == Status.SUCCEEDED and run.verified == BackupRun.Verified.PENDING
                 and (verification is None or verification.is_active))
    return job_page(request, run, "backups/partials/run_progress.html", heading=f"Backup #{run.pk}",
                    parent=run.database.name, parent_url=reverse("database-detail", args=[run.database.name]),
                    active=run.is_active or verifying, artifacts=run.artifacts.select_related("storage"),
                    verification=verification)


@permission_required("drills.run_restore", raise_exception=True)
def artifact_download(request, pk):
    """Stream one stored file of a backup to an admin (audited): the dump holds
    all the data, so only those who may restore may take it away. The expected
    SHA-256 goes along in a header for the client to check."""

    artifact = get_object_or_404(Artifact.objects.select_related("run__database", "storage"), pk=pk,
                                 deleted_at__isnull=True)
    backend = backend_for(artifact.storage)
    chunks = backend.read(artifact.key)
    try:
        first = next(chunks, b"")  # fail here, as a page, rather than mid-download
    except StorageError as exc:
        messages.error(request, f"Cannot download {artifact.name} from {artifact.storage}: {exc}")
        return redirect("run-detail", pk=artifact.run_id)
    AuditEvent.record("artifact.download", f"{artifact.name} of backup #{artifact.run_id} downloaded from "
                      f"{artifact.storage}", obj=artifact.run, request=request, storage=artifact.storage.name,
                      key=artifact.key)

    def stream():
        yield first
        yield from chunks

    response = StreamingHttpResponse(stream(), content_type="application/octet-stream")
    filename = f"{artifact.run.database.name}-{artifact.run.stamp}-{artifact.name}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Content-Length"] = str(artifact.size)
    response["X-Checksum-SHA256"] = artifact.sha256
    return response
