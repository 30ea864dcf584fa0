"""Add or update a notification channel; its apprise URL comes from an environment variable."""


from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from controlpanel.cli import TextArgsMixin, env_text
from controlpanel.models import NotificationChannel
from controlpanel.notify import understands
from controlpanel.validators import name_validator


class Command(TextArgsMixin, BaseCommand):
    help = "Add a notification channel (the apprise URL is read from the named environment variable)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--url-env", required=True, metavar="VAR")
        parser.add_argument("--events", nargs="*", default=[], choices=NotificationChannel.Event.values)

    def handle(self, *args, name, url_env, events, **options):
        try:
            name_validator(name)
        except ValidationError as exc:
            raise CommandError(f"Channel name {name!r}: {' '.join(exc.messages)}") from None
        url = env_text(url_env)
        if not url:
            raise CommandError(f"Environment variable {url_env} is not set or empty.")
        if not understands(url):
            raise CommandError(f"{url_env} does not hold a URL apprise understands (see the apprise URL formats).")
        channel, created = NotificationChannel.objects.update_or_create(
            name=name, defaults={"url": url, "events": events, "enabled": True})
        self.stdout.write(f"Channel {name} {'added' if created else 'updated'} "
                          f"({', '.join(events) or 'all events but the digest'}).")
