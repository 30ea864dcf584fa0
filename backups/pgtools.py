"""PostgreSQL client tools: connections with plain-word errors, pg_dump /
pg_restore selection by major version, version checks."""

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo
from django.conf import settings


class PgError(Exception):
    """A problem with a PostgreSQL server or tool, in words an operator can act on."""


class ConnectionProblem(PgError):
    pass


class ToolMissing(PgError):
    pass


@dataclass(frozen=True)
class ConnInfo:
    host: str
    port: int
    dbname: str
    user: str
    password: str = ""
    sslmode: str = "prefer"

    @classmethod
    def of(cls, database) -> "ConnInfo":
        return cls(database.host, database.port, database.dbname, database.user,
                   database.password or "", database.sslmode)

    @classmethod
    def from_dsn(cls, dsn: str) -> "ConnInfo":
        """From a libpq connection string or URL; a bad one raises PgError without echoing it."""
        try:
            params = psycopg.conninfo.conninfo_to_dict(dsn)
            port = int(params.get("port") or 5432)
        except (psycopg.ProgrammingError, UnicodeError, ValueError):
            raise PgError("The connection string is not valid (libpq key=value or postgresql:// URL, "
                          "one numeric port).") from None
        # conninfo_to_dict() of a string gives strings only (ints come from keyword arguments).
        return cls(str(params.get("host") or "127.0.0.1"), port,
                   str(params.get("dbname") or "postgres"), str(params.get("user") or "postgres"),
                   str(params.get("password") or ""), str(params.get("sslmode") or "prefer"))

    def kwargs(self, **overrides) -> dict:
        params = {"host": self.host, "port": self.port, "dbname": self.dbname, "user": self.user,
                  "sslmode": self.sslmode, "connect_timeout": 10, "application_name": "restorable"}
        if self.password:
            params["password"] = self.password
        params.update(overrides)
        return params

    def env(self) -> dict:
        """Environment for a client tool: the password travels here, never on argv."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGHOST=self.host, PGPORT=str(self.port), PGUSER=self.user, PGDATABASE=self.dbname,
                   PGSSLMODE=self.sslmode, PGCONNECT_TIMEOUT="10", PGAPPNAME="restorable")
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return f"ConnInfo({self.describe()!r})"


def explain_connection_error(info: ConnInfo, exc: Exception) -> str:
    """Turn a libpq error into a sentence that says what to fix."""
    text = str(exc)
    where = f"{info.host}:{info.port}"
    if "password authentication failed" in text or "password must be" in text:
        return f"Wrong password for user {info.user!r} on {where} (password authentication failed)."
    if "no password supplied" in text:
        return f"The server at {where} asks for a password for user {info.user!r} and none is set."
    if re.search(r'role ".*" does not exist', text):
        return f"User {info.user!r} does not exist on {where}."
    if re.search(r'database ".*" does not exist', text):
        return f"Database {info.dbname!r} does not exist on {where}."
    if "SSL" in text and ("required" in text or "not support" in text or "no encryption" in text):
        return (f"The server at {where} requires SSL (or refuses it): set sslmode accordingly. "
                f"Detail: {first_line(text)}")
    if "no pg_hba.conf entry" in text:
        return f"The server at {where} does not allow this connection (pg_hba.conf): {first_line(text)}"
    if "timeout expired" in text or "timed out" in text:
        return f"Host {where} did not answer within 10 s (unreachable, or a firewall drops the packets)."
    if "Connection refused" in text or "could not connect" in text or "Network is unreachable" in text:
        return (f"Host {where} is unreachable: nothing accepts connections there "
                "(is PostgreSQL running, is the port right?).")
    if "could not translate host name" in text or "Name or service not known" in text:
        return f"Host name {info.host!r} cannot be resolved."
    return f"Cannot connect to {where}: {first_line(text)}"


def first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def one_row(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The row of a query that always returns one (SHOW, an aggregate, SELECT f(), pg_stat_archiver)."""
    row = cursor.fetchone()
    if row is None:
        raise PgError("The server returned no row for a query that always returns one.")
    return row


def one_value(cursor: psycopg.Cursor[Any]) -> Any:
    """The first column of one_row()."""
    return one_row(cursor)[0]


def connect(info: ConnInfo, **overrides) -> psycopg.Connection:
    try:
        return psycopg.connect(**info.kwargs(**overrides))
    except psycopg.OperationalError as exc:
        raise ConnectionProblem(explain_connection_error(info, exc)) from None


@dataclass
class ServerCheck:
    version_num: int
    version: str
    unreadable_tables: list[str]

    @property
    def major(self) -> int:
        return self.version_num // 10000


def check_server(info: ConnInfo) -> ServerCheck:
    """Connect, read the version and list tables this user may not SELECT."""
    with connect(info) as conn:
        version_num = int(one_value(conn.execute("SHOW server_version_num")))
        version = one_value(conn.execute("SHOW server_version"))
        unreadable = [
            row[0] for row in conn.execute(
                """SELECT format('%I.%I', n.nspname, c.relname)
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE c.relkind IN ('r', 'p', 'm', 'S')
                     AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                     AND n.nspname NOT LIKE 'pg\\_%%'
                     AND NOT has_table_privilege(c.oid, 'SELECT')
                   ORDER BY 1"""
            )
        ]
    return ServerCheck(version_num, version, unreadable)


def installed_majors() -> list[int]:
    root = Path(settings.PG_BIN_ROOT)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and (p / "bin" / "pg_dump").exists())


def install_hint(major: int) -> str:
    return (f"install the PostgreSQL {major} client tools (Debian/Ubuntu: apt-get install postgresql-client-{major}, "
            f"from the PGDG repository if your release lacks it) or set RESTORABLE_PG_BIN_ROOT")


def tool_for(tool: str, server_major: int, exact: bool = False) -> Path:
    """The binary of TOOL for a server of SERVER_MAJOR.

    The same major is preferred: a newer pg_dump writes an archive that older
    pg_restore cannot read, and drills restore with the source's own major.
    exact=True (sandboxes: initdb, postgres) refuses any other major.
    """
    majors = installed_majors()
    candidates = [m for m in majors if m == server_major] or ([] if exact else [m for m in majors if m > server_major])
    if not candidates:
        have = ", ".join(map(str, majors)) or "none"
        need = f"PostgreSQL {server_major}" if exact else f"PostgreSQL {server_major} or newer"
        raise ToolMissing(f"No {tool} for {need} is installed (installed majors: {have}): "
                          f"{install_hint(server_major)}.")
    return Path(settings.PG_BIN_ROOT) / str(candidates[0]) / "bin" / tool


def tool_version(path: Path) -> str:
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()

