from django.contrib import admin, messages

from controlpanel.models import AuditEvent, NotificationChannel
from controlpanel.notify import send


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created", "user", "action", "summary", "ip")
    list_filter = ("action",)
    readonly_fields = ("created", "user", "action", "object_type", "object_id", "summary", "details", "ip")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    """Channels: the apprise URL is write-only (it holds tokens)."""

    list_display = ("name", "events", "enabled", "created")
    actions = ["send_test"]

    @admin.action(description="Send a test message")
    def send_test(self, request, queryset):
        for channel in queryset:
            ok = send("test", "A test alert from Restorable: this channel works.", channels=[channel])
            level = messages.SUCCESS if ok else messages.ERROR
            self.message_user(request, f"{channel}: {'sent' if ok else 'not accepted (see the log)'}", level)
