"""Send a test alert through one channel."""

from django.core.management.base import BaseCommand, CommandError

from controlpanel.cli import TextArgsMixin
from controlpanel.models import NotificationChannel
from controlpanel.notify import send_test


class Command(TextArgsMixin, BaseCommand):
    help = "Send a test message through a notification channel."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        channel = NotificationChannel.objects.filter(name=name).first()
        if channel is None:
            raise CommandError(f"No channel named {name!r}.")
        reason = send_test(channel)
        if reason is not None:
            raise CommandError(f"Channel {name} did not accept the test message: {reason}")
        self.stdout.write(f"Test message sent through {name}.")
