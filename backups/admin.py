from django.contrib import admin

from backups.forms import DatabaseForm, StorageForm
from backups.models import Artifact, BackupPolicy, BackupRun, Database, Storage


@admin.register(Storage)
class StorageAdmin(admin.ModelAdmin):
    form = StorageForm
    list_display = ("name", "kind", "location", "retention_days")


@admin.register(Database)
class DatabaseAdmin(admin.ModelAdmin):
    form = DatabaseForm
    list_display = ("name", "host", "port", "dbname", "server_version")


@admin.register(BackupPolicy)
class BackupPolicyAdmin(admin.ModelAdmin):
    list_display = ("database", "dump_cron", "drill_cron", "compression", "enabled")


class ArtifactInline(admin.TabularInline):
    model = Artifact
    extra = 0
    readonly_fields = ("storage", "name", "key", "size", "sha256", "verified_at", "deleted_at")
    can_delete = False


@admin.register(BackupRun)
class BackupRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "database", "status", "verified", "created", "size_bytes", "trigger")
    list_filter = ("status", "verified", "database")
    readonly_fields = [f.name for f in BackupRun._meta.fields if f.name not in ("keep",)]
    inlines = [ArtifactInline]
