"""Add or update a storage; S3 keys come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."""

from django.core.management.base import BaseCommand, CommandError

from backups.forms import StorageForm
from backups.models import Storage
from backups.services import save_storage
from backups.storage import StorageError
from controlpanel.cli import TextArgsMixin
from controlpanel.env import env_secret


class Command(TextArgsMixin, BaseCommand):
    help = "Add (or update) a local or S3-compatible storage."

    def add_arguments(self, parser):
        parser.add_argument("name")
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--local", metavar="PATH", help="a local directory")
        where.add_argument("--s3-endpoint", metavar="URL", help="S3-compatible endpoint ('aws' for AWS itself)")
        # Options left out keep the stored value when the storage exists (None: not given).
        parser.add_argument("--bucket")
        parser.add_argument("--prefix")
        parser.add_argument("--region")
        parser.add_argument("--path-style", action="store_true", default=None)
        parser.add_argument("--retention-days", type=int)
        parser.add_argument("--lifecycle-days", type=int)
        parser.add_argument("--sse", choices=["AES256", "aws:kms"])
        parser.add_argument("--checksum-when-required", action="store_true", default=None,
                            help="only send checksums the API requires (some S3-compatible services)")
        parser.add_argument("--no-test", action="store_true", help="do not test access now")

    def handle(self, *args, **o):
        s3 = o["s3_endpoint"] is not None
        instance = Storage.objects.filter(name=o["name"]).first()
        if instance is not None:  # an update: start from what is stored, not from the defaults
            data = {field: getattr(instance, field) for field in StorageForm.Meta.fields
                    if field not in ("access_key_id", "secret_access_key")}
            data["lifecycle_days"] = instance.lifecycle_days or ""
        else:
            instance = Storage()
            data = {"prefix": "", "region": "auto", "path_style": False, "server_side_encryption": "",
                    "checksum_when_required": False, "multipart_chunk_mb": 5, "lifecycle_days": "",
                    "retention_days": 90 if s3 else 14}
        given = {
            "name": o["name"],
            "kind": Storage.Kind.S3 if s3 else Storage.Kind.LOCAL,
            "path": o["local"] or "",
            "endpoint_url": "" if not s3 or o["s3_endpoint"] == "aws" else o["s3_endpoint"],
            "bucket": o["bucket"] if s3 else "",
            "prefix": o["prefix"],
            "region": o["region"],
            "path_style": o["path_style"],
            "retention_days": o["retention_days"],
            "lifecycle_days": o["lifecycle_days"] or ("" if o["lifecycle_days"] == 0 else None),
            "server_side_encryption": o["sse"],
            "checksum_when_required": o["checksum_when_required"],
            # Empty keys keep the stored ones (write-only secrets).
            "access_key_id": (env_secret("AWS_ACCESS_KEY_ID") or "") if s3 else "",
            "secret_access_key": (env_secret("AWS_SECRET_ACCESS_KEY") or "") if s3 else "",
        }
        data.update({key: value for key, value in given.items() if value is not None})
        if s3 and not data.get("bucket"):
            raise CommandError("--bucket is required with --s3-endpoint.")
        form = StorageForm(data, instance=instance)
        if not form.is_valid():
            raise CommandError(form_errors(form))
        try:
            storage = save_storage(form.save(commit=False), test=not o["no_test"])
        except StorageError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Storage {storage.name} saved ({storage.location}).")


def form_errors(form) -> str:
    parts = []
    for field, errors in form.errors.items():
        label = "" if field == "__all__" else f"{field}: "
        parts.append(label + " ".join(errors))
    return "; ".join(parts)
