from django.contrib import admin

from controlpanel.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created", "user", "action", "summary", "ip")
    list_filter = ("action",)
    readonly_fields = ("created", "user", "action", "object_type", "object_id", "summary", "details", "ip")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
