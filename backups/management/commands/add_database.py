"""Add or update a database from a connection string in an environment variable."""


import psycopg.conninfo
from django.core.management.base import BaseCommand, CommandError

from backups.forms import DatabaseForm
from backups.management.commands.add_storage import form_errors
from backups.models import Database, Storage
from controlpanel.cli import TextArgsMixin, env_text


class Command(TextArgsMixin, BaseCommand):
    help = "Add (or update) a database; its connection string is read from the environment variable you name."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--dsn-env", required=True, metavar="VAR",
                            help="environment variable holding the connection string (never put it on argv)")
        parser.add_argument("--storage", required=True, help="primary storage")
        # Options left out keep the stored value when the database exists.
        parser.add_argument("--offsite", action="append", help="off-site storage (repeatable)")
        parser.add_argument("--timezone", help="of the schedules (default UTC)")
        parser.add_argument("--globals", action="store_true", default=None, help="also dump roles (without passwords)")
        parser.add_argument("--no-test", action="store_true", help="do not connect now")

    def handle(self, *args, **o):
        dsn = env_text(o["dsn_env"])
        if not dsn:
            raise CommandError(f"Environment variable {o['dsn_env']} is not set or empty.")
        try:
            params = psycopg.conninfo.conninfo_to_dict(dsn)
        except (psycopg.ProgrammingError, UnicodeError, ValueError):
            raise CommandError(f"{o['dsn_env']} does not hold a valid PostgreSQL connection string.") from None
        instance = Database.objects.filter(name=o["name"]).first() or Database()
        offsite = o["offsite"] if o["offsite"] is not None else (
            [s.name for s in instance.offsite_storages.all()] if instance.pk else [])
        storages = {s.name: s for s in Storage.objects.filter(name__in=[o["storage"], *offsite])}
        missing = [n for n in [o["storage"], *offsite] if n not in storages]
        if missing:
            raise CommandError(f"No storage named {', '.join(missing)}; add it with add_storage first.")
        data = {
            "name": o["name"],
            "host": params.get("host") or "127.0.0.1",
            "port": params.get("port") or 5432,
            "dbname": params.get("dbname") or params.get("user") or "postgres",
            "user": params.get("user") or "postgres",
            "password": params.get("password") or "",
            "sslmode": params.get("sslmode") or "prefer",
            "timezone": o["timezone"] or (instance.timezone if instance.pk else "UTC"),
            "primary_storage": storages[o["storage"]].pk,
            "offsite_storages": [storages[n].pk for n in offsite],
            "include_globals": (o["globals"] if o["globals"] is not None
                                else bool(instance.pk and instance.include_globals)),
            "rto_budget_seconds": 3600,
            "rpo_budget_seconds": 86400,
            "test_connection": not o["no_test"],
        }
        if instance.pk:  # an update: what the CLI does not set stays as it was
            data.update(rto_budget_seconds=instance.rto_budget_seconds, rpo_budget_seconds=instance.rpo_budget_seconds,
                        smoke_sql=instance.smoke_sql, agent_queue=instance.agent_queue,
                        tables_that_matter=", ".join(instance.tables_that_matter or []))
        form = DatabaseForm(data, instance=instance)
        if not form.is_valid():
            raise CommandError(form_errors(form))
        database = form.save()
        version = f"PostgreSQL {database.server_major}" if database.server_major else "version not detected"
        self.stdout.write(f"Database {database.name} saved ({version}).")
