"""Enable point-in-time recovery for a database with pgBackRest."""

import json
import os

from django.core.management.base import BaseCommand, CommandError

from backups.models import Database, Storage
from backups.pitr import enable, setup_for
from controlpanel.cli import TextArgsMixin


class Command(TextArgsMixin, BaseCommand):
    help = ("Discover the data directory and version, write the pgBackRest configuration, create the stanza, "
            "check archiving and print the postgresql.conf lines. Run it on the database host as root or postgres.")

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--repo-path", default="", help="local repository directory (repo 1)")
        parser.add_argument("--offsite", help="S3-compatible storage for repository 2")
        parser.add_argument("--passphrase-env", metavar="VAR",
                            help="env variable with a repository encryption passphrase")
        parser.add_argument("--no-verify-tls", action="store_true", help="do not verify the S3 endpoint's certificate")
        parser.add_argument("--heartbeat-seconds", type=int, metavar="N",
                            help="opt-in: write a restorable_heartbeat row every N s (>= 5) for exact PITR RPO")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, name, repo_path, offsite, passphrase_env, no_verify_tls, json: bool, heartbeat_seconds,
               **options):
        database = Database.objects.filter(name=name).first()
        if database is None:
            raise CommandError(f"No database named {name!r}.")
        storage = None
        if offsite:
            storage = Storage.objects.filter(name=offsite, kind=Storage.Kind.S3).first()
            if storage is None:
                raise CommandError(f"No S3 storage named {offsite!r}.")
        passphrase = os.environ.get(passphrase_env, "") if passphrase_env else ""
        setup = setup_for(database, repo_path=repo_path, offsite=storage, passphrase=passphrase,
                          verify_tls=not no_verify_tls)
        if heartbeat_seconds is not None:
            if heartbeat_seconds < 5:
                raise CommandError("--heartbeat-seconds must be at least 5.")
            setup.heartbeat_seconds = heartbeat_seconds
            setup.save(update_fields=["heartbeat_seconds"])
        report = enable(setup)
        setup.refresh_from_db()
        setup.save()  # schedules (and the heartbeat) follow the enabled state
        if json:
            self.stdout.write(_dumps({"ok": report.ok, "steps": [s.__dict__ for s in report.steps],
                                      "postgresql_conf": report.postgresql_conf}))
        else:
            for step in report.steps:
                self.stdout.write(f"{'ok  ' if step.ok else 'FAIL'} {step.step}: {step.detail}")
            if report.postgresql_conf:
                self.stdout.write("\npostgresql.conf lines for this database:\n  "
                                  + "\n  ".join(report.postgresql_conf))
        if not report.ok:
            raise SystemExit(1)


def _dumps(data) -> str:
    return json.dumps(data, indent=2, default=str)
