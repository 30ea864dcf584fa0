"""Re-encrypt every stored secret with the first key of RESTORABLE_SECRETS_KEYS."""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from controlpanel.cli import TextArgsMixin
from controlpanel.crypto import EncryptedTextField


class Command(TextArgsMixin, BaseCommand):
    help = ("Re-encrypt stored secrets with the newest key. Rotate by setting "
            "RESTORABLE_SECRETS_KEYS=new,old, running this, then dropping the old key.")

    def handle(self, *args, **options):
        count = 0
        with transaction.atomic():
            for model in apps.get_models():
                fields = [f for f in model._meta.fields if isinstance(f, EncryptedTextField)]
                if not fields:
                    continue
                for obj in model._default_manager.select_for_update().all():
                    # Loading decrypts with any key; saving the plain value
                    # encrypts it again with the first key.
                    values = {f.attname: str(getattr(obj, f.attname)) for f in fields if getattr(obj, f.attname)}
                    if values:
                        model._default_manager.filter(pk=obj.pk).update(**values)
                        count += 1
        self.stdout.write(f"Re-encrypted the secrets of {count} rows with the newest key.")
