from django.contrib import admin

from drills.models import Drill, Restore, Verification


@admin.register(Verification)
class VerificationAdmin(admin.ModelAdmin):
    list_display = ("pk", "run", "kind", "status", "created")
    list_filter = ("status", "kind")


@admin.register(Drill)
class DrillAdmin(admin.ModelAdmin):
    list_display = ("pk", "database", "status", "rto_seconds", "row_counts_match", "created")
    list_filter = ("status", "database")


@admin.register(Restore)
class RestoreAdmin(admin.ModelAdmin):
    list_display = ("pk", "database", "target", "status", "requested_by", "created")
    list_filter = ("status", "target")
