"""Restore a backup: into a sandbox kept for some hours, or into a new database."""

from django.core.management.base import CommandError

from backups.models import BackupRun
from backups.pgtools import ConnInfo, PgError
from controlpanel.cli import JobCommand, env_text, iso
from controlpanel.jobs import Status, Trigger
from drills.forms import NAME
from drills.models import Restore
from drills.restores import take_password
from drills.services import create_restore, start_restore


class Command(JobCommand):
    help = "Restore a backup run (all of it, or --table/--schema) into a sandbox or a new database."

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int)
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--to-sandbox", action="store_true", help="a sandbox kept for --hours")
        target.add_argument("--to-dsn-env", metavar="VAR", help="env variable holding the target server's DSN")
        parser.add_argument("--hours", type=int, default=4)
        parser.add_argument("--new-database", metavar="NAME", help="database to create on the target server")
        parser.add_argument("--confirm", metavar="NAME", default="",
                            help="type the existing database's name to allow overwriting it")
        parser.add_argument("--table", action="append", default=[], help="schema.table or table (repeatable)")
        parser.add_argument("--schema", action="append", default=[])
        super().add_arguments(parser)

    def restore_of(self, **o) -> tuple[BackupRun, dict]:
        run = BackupRun.objects.filter(pk=o["run_id"], status=Status.SUCCEEDED).select_related("database").first()
        if run is None:
            raise CommandError(f"No succeeded backup run #{o['run_id']}.")
        if not 1 <= o["hours"] <= 24 * 14:
            raise CommandError("--hours must be between 1 and 336.")
        for option in ("new_database", "confirm"):
            if o[option] and not NAME.match(o[option]):
                raise CommandError(f"--{option.replace('_', '-')} must be a database name (letters, digits, _; "
                                   "at most 63).")
        for table in o["table"]:
            if not all(NAME.match(part) for part in table.split(".")) or table.count(".") > 1:
                raise CommandError(f"--table {table!r} is not a table name (schema.table).")
        for schema in o["schema"]:
            if not NAME.match(schema):
                raise CommandError(f"--schema {schema!r} is not a schema name.")
        kwargs = {"target": Restore.Target.SANDBOX, "keep_hours": o["hours"], "tables": o["table"],
                  "schemas": o["schema"], "trigger": Trigger.API}
        if o["to_dsn_env"]:
            dsn = env_text(o["to_dsn_env"])
            if not dsn:
                raise CommandError(f"Environment variable {o['to_dsn_env']} is not set or empty.")
            if not o["new_database"]:
                raise CommandError("--to-dsn-env needs --new-database NAME.")
            try:
                ConnInfo.from_dsn(dsn)
            except PgError as exc:
                raise CommandError(f"{o['to_dsn_env']}: {exc}") from None
            kwargs.update(target=Restore.Target.NEW_DATABASE, target_dbname=o["new_database"],
                          target_dsn=dsn, confirmation=o["confirm"])
        return run, kwargs

    def create(self, **options):
        run, kwargs = self.restore_of(**options)
        return create_restore(run, **kwargs)

    def start(self, **options):
        run, kwargs = self.restore_of(**options)
        return start_restore(run, **kwargs)

    def as_dict(self, job):
        data = {"id": job.pk, "status": job.status, "error": job.error, "target": job.target,
                "connection": job.connection, "expires": iso(job.expires), "tables": job.tables,
                "started": iso(job.started), "finished": iso(job.finished)}
        password = take_password(job) if job.status == Status.SUCCEEDED else ""
        if password:
            data["password"] = password  # shown once: it is erased as it is read
        return data

    def queued(self, job):
        return f"Restore #{job.pk} queued; follow it with --wait or in the panel."

    def describe(self, job):
        password = take_password(job) if job.status == Status.SUCCEEDED else ""
        self.stdout.write(f"Restore #{job.pk}: {job.status}")
        if job.connection:
            c = job.connection
            self.stdout.write(f"  host={c['host']} port={c['port']} dbname={c['dbname']} user={c['user']}")
        if password:
            self.stdout.write(f"  password={password}  (shown once)")
        if job.error:
            self.stderr.write(job.error)
