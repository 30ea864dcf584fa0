"""First run: create the admin account if no user exists yet."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from controlpanel.cli import TextArgsMixin
from controlpanel.env import env_secret, env_str
from controlpanel.roles import ADMIN


class Command(TextArgsMixin, BaseCommand):
    help = "Create the first admin (RESTORABLE_ADMIN_USER / RESTORABLE_ADMIN_PASSWORD, or a printed password)."

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.exists():
            self.stdout.write("Users exist already; no admin created.")
            return
        username = env_str("RESTORABLE_ADMIN_USER", "admin")
        password = env_secret("RESTORABLE_ADMIN_PASSWORD")
        generated = not password
        password = password or secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=password)
        user.groups.add(Group.objects.get_or_create(name=ADMIN)[0])
        if generated:
            self.stdout.write(self.style.WARNING(
                f"Created admin {username!r} with password: {password}\n"
                "It is shown once; change it after logging in."
            ))
        else:
            self.stdout.write(f"Created admin {username!r} with the password from RESTORABLE_ADMIN_PASSWORD.")
