from django.contrib import admin

from backups.forms import DatabaseForm, PolicyForm, StorageForm
from backups.models import Artifact, BackupPolicy, BackupRun, BaseBackup, Database, PitrSetup, Storage


class BackupPolicyForm(PolicyForm):
    class Meta(PolicyForm.Meta):
        fields = ["database", *PolicyForm.Meta.fields]


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
    form = BackupPolicyForm
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


@admin.register(PitrSetup)
class PitrSetupAdmin(admin.ModelAdmin):
    list_display = ("database", "stanza", "enabled", "checked", "status")
    readonly_fields = ("data_directory", "socket_directory", "enabled", "info", "archiver", "checked", "status")


@admin.register(BaseBackup)
class BaseBackupAdmin(admin.ModelAdmin):
    list_display = ("pk", "database", "kind", "status", "label", "size_bytes", "created")
    list_filter = ("status", "kind", "database")
