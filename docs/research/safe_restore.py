#!/usr/bin/env python3
"""Prototype: restore a pg_dump custom-format archive into a sandbox WITHOUT running
any of the dump's code as a superuser.

  superuser (postgres)  : CREATE ROLE restorer/reader, CREATE DATABASE ... OWNER restorer,
                          CREATE SCHEMA <ext schema> AUTHORIZATION restorer,
                          CREATE EXTENSION <name from the TOC, checked against
                          pg_available_extensions> -- never a line of the dump's SQL.
  restorer (NOSUPERUSER): pg_restore --no-owner --no-privileges ... -L <filtered list> --jobs N,
                          connected AS restorer (-U restorer), never via --role (SET ROLE
                          can be undone by code the restore runs).
  reader  (NOSUPERUSER, pg_read_all_data, BYPASSRLS, read-only): row counts and smoke SQL.

TOC entries a non-superuser cannot restore are commented out of the list file and
reported by name with the reason, together with everything that depends on them, so a
normal dump restores with exit status 0 under --exit-on-error.

Usage: safe_restore.py DUMP --port P --dbname DB [--jobs N] [--workdir DIR]
           [--superuser-password-file F] [--restorer-password-file F] [--reader-password-file F]
           [--count TABLE ...] [--json OUT]
Only psql/pg_restore are needed (no psycopg): the panel would do the same with its own connections.
"""

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))

# Desc strings as pg_restore -l prints them, longest first so "TABLE DATA" wins over "TABLE".
DESCS = sorted("""ACCESS METHOD|ACL|AGGREGATE|AMOP|AMPROC|ATTRDEF|BLOB|BLOB METADATA|BLOBS|CAST|CHECK CONSTRAINT|
COLLATION|COMMENT|CONSTRAINT|CONVERSION|DATABASE|DATABASE PROPERTIES|DEFAULT|DEFAULT ACL|DOMAIN|ENCODING|
EVENT TRIGGER|EXTENSION|FK CONSTRAINT|FOREIGN DATA WRAPPER|FOREIGN SERVER|FOREIGN TABLE|FUNCTION|INDEX|
INDEX ATTACH|LARGE OBJECT|MATERIALIZED VIEW|MATERIALIZED VIEW DATA|OPERATOR|OPERATOR CLASS|OPERATOR FAMILY|
POLICY|PROCEDURAL LANGUAGE|PROCEDURE|PUBLICATION|PUBLICATION TABLE|PUBLICATION TABLES IN SCHEMA|ROW SECURITY|
RULE|SCHEMA|SEARCHPATH|SECURITY LABEL|SEQUENCE|SEQUENCE OWNED BY|SEQUENCE SET|SERVER|SHELL TYPE|STATISTICS|
STDSTRINGS|SUBSCRIPTION|SUBSCRIPTION TABLE|TABLE|TABLE ATTACH|TABLE DATA|TEXT SEARCH CONFIGURATION|
TEXT SEARCH DICTIONARY|TEXT SEARCH PARSER|TEXT SEARCH TEMPLATE|TRANSFORM|TRIGGER|TYPE|USER MAPPING|VIEW""".replace("\n", "").split("|"),
               key=len, reverse=True)

# Only a superuser may create these, or they have no place in a throwaway sandbox.
SUPERUSER_ONLY = {
    "EVENT TRIGGER": "event triggers need a superuser (and would run their function as whoever issues DDL)",
    "PROCEDURAL LANGUAGE": "CREATE LANGUAGE needs a superuser",
    "FOREIGN DATA WRAPPER": "CREATE FOREIGN DATA WRAPPER needs a superuser",
    "ACCESS METHOD": "CREATE ACCESS METHOD needs a superuser",
    "OPERATOR FAMILY": "CREATE OPERATOR FAMILY needs a superuser",
    "OPERATOR CLASS": "CREATE OPERATOR CLASS needs a superuser",
    "TEXT SEARCH PARSER": "CREATE TEXT SEARCH PARSER needs a superuser",
    "TEXT SEARCH TEMPLATE": "CREATE TEXT SEARCH TEMPLATE needs a superuser",
    "SUBSCRIPTION": "subscriptions need a superuser (PostgreSQL 15) and must never connect from a sandbox",
    "SUBSCRIPTION TABLE": "belongs to a subscription",
    "PUBLICATION": "publications are not needed in a sandbox (FOR ALL TABLES / TABLES IN SCHEMA need a superuser)",
    "PUBLICATION TABLE": "publications are not restored in a sandbox",
    "PUBLICATION TABLES IN SCHEMA": "publications are not restored in a sandbox",
    "USER MAPPING": "user mappings name source roles that do not exist in the sandbox, and carry credentials",
    "SECURITY LABEL": "needs the label provider loaded (and a superuser for most providers)",
}
ROUTINES = {"FUNCTION", "PROCEDURE", "AGGREGATE"}


class Entry:
    def __init__(self, dump_id, desc, schema, name, owner, line):
        self.id, self.desc, self.schema, self.name, self.owner, self.line = dump_id, desc, schema, name, owner, line
        self.sql = ""
        self.deps: list[int] = []

    def label(self):
        where = f"{self.schema}." if self.schema not in ("-", "") else ""
        return f"{self.desc} {where}{self.name}".strip()


def run(argv, env=None, check=True, **kw):
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, **kw)
    if check and result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


def parse_list(text: str) -> list[Entry]:
    entries = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        m = re.match(r"^(\d+); (\d+) (\d+) (.*)$", line)
        if not m:
            raise SystemExit(f"unparsable TOC line: {line!r}")
        rest = m.group(4)
        desc = next((d for d in DESCS if rest == d or rest.startswith(d + " ")), None)
        if desc is None:
            raise SystemExit(f"unknown TOC entry type in: {line!r}")
        fields = rest[len(desc):].strip()
        schema, _, fields = fields.partition(" ")
        # The name may contain spaces ("EXTENSION hstore", "USER MAPPING u SERVER s"); the owner is the
        # last word (empty for some entries, e.g. EXTENSION / COMMENT ON EXTENSION).
        if line.endswith(" "):
            name, owner = fields.rstrip(), ""
        else:
            name, _, owner = fields.rpartition(" ")
            if not name:
                name, owner = owner, ""
        entries.append(Entry(int(m.group(1)), desc, schema, name, owner, line))
    return entries


HEADER = re.compile(r"^--\n-- TOC entry (\d+) \(class \d+ OID \d+\)\n(?:-- Dependencies: ([\d ]+)\n)?"
                    r"-- Name: .*?; Type: (.*?); Schema: .*?; Owner: .*\n(?:-- Data Pos: \d+\n)?--\n", re.M)


def attach_sql(dump: Path, entries: list[Entry], workdir: Path) -> None:
    """The SQL and dependencies of each schema entry, from one `pg_restore -v -s -f -`.
    The text is only advisory (it decides what to skip, never what a superuser runs):
    a header forged inside a function body shows up as a duplicate id, and then the
    entries concerned are read one by one with a one-line list file."""
    by_id = {e.id: e for e in entries}
    text = run([str(BIN / "pg_restore"), "--verbose", "--schema-only", "--file=-", str(dump)]).stdout
    matches = list(HEADER.finditer(text))
    seen: dict[int, int] = {}
    for m in matches:
        seen[int(m.group(1))] = seen.get(int(m.group(1)), 0) + 1
    suspicious = {i for i, n in seen.items() if n > 1}
    for i, m in enumerate(matches):
        dump_id = int(m.group(1))
        entry = by_id.get(dump_id)
        if entry is None or dump_id in suspicious:
            continue
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        entry.sql = text[m.end():end]
        entry.deps = [int(x) for x in (m.group(2) or "").split()]
    for dump_id in suspicious:  # fall back: one entry per pg_restore run
        entry = by_id[dump_id]
        one = workdir / f"one-{dump_id}.list"
        one.write_text(entry.line + "\n")
        out = run([str(BIN / "pg_restore"), "--verbose", f"--use-list={one}", "--file=-", str(dump)]).stdout
        m = HEADER.search(out)
        entry.sql = out[m.end():] if m else out
        entry.deps = [int(x) for x in (m.group(2) or "").split()] if m else []
    # Data entries carry no SQL here: tie them to the object they fill.
    objects = {(e.desc, e.schema, e.name): e.id for e in entries}
    for e in entries:
        if e.desc == "TABLE DATA":
            e.deps = [objects.get(("TABLE", e.schema, e.name)) or objects.get(("FOREIGN TABLE", e.schema, e.name))]
        elif e.desc == "MATERIALIZED VIEW DATA":
            e.deps = [objects.get(("MATERIALIZED VIEW", e.schema, e.name))]
        elif e.desc == "SEQUENCE SET":
            e.deps = [objects.get(("SEQUENCE", e.schema, e.name))]
        elif e.desc == "BLOBS":
            e.deps = [x.id for x in entries if x.desc == "BLOB"]
        e.deps = [d for d in e.deps if d]


class Psql:
    def __init__(self, port: int, user: str, password: str, dbname: str = "postgres"):
        self.port, self.user, self.password, self.dbname = port, user, password, dbname

    def env(self):
        return {"PGHOST": "127.0.0.1", "PGPORT": str(self.port), "PGUSER": self.user,
                "PGPASSWORD": self.password, "PGDATABASE": self.dbname, "PGSSLMODE": "disable"}

    def __call__(self, sql: str, dbname: str | None = None, check=True) -> list[list[str]]:
        env = {**self.env(), **({"PGDATABASE": dbname} if dbname else {})}
        out = run([str(BIN / "psql"), "--no-psqlrc", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                   "-c", sql], env=env, check=check, stdin=subprocess.DEVNULL).stdout
        return [line.split("\t") for line in out.splitlines() if line]


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def plan(entries: list[Entry], available: set[str], trusted_langs: set[str], suset: set[str],
         dump_types: set[str]) -> tuple[dict[int, str], list[tuple[str, str]], list[str]]:
    """-> (skipped id -> reason, extensions to pre-create [(name, schema)], fatal problems)"""
    skip: dict[int, str] = {}
    extensions: list[tuple[str, str]] = []
    fatal: list[str] = []
    for e in entries:
        if e.desc == "EXTENSION":
            schema = re.search(r"WITH SCHEMA (\S+?);", e.sql)
            schema_name = schema.group(1).strip('"').replace('""', '"') if schema else "public"
            if e.name not in available:
                fatal.append(f"extension {e.name!r} is not installed in the sandbox's PostgreSQL "
                             f"(install its package, e.g. postgresql-15-{e.name.replace('_', '-')})")
            extensions.append((e.name, schema_name))
            skip[e.id] = "pre-created by the superuser"
        elif e.desc == "COMMENT" and e.name.startswith("EXTENSION "):
            skip[e.id] = "comment on an extension the superuser created (only its owner may comment)"
        elif e.desc in SUPERUSER_ONLY:
            skip[e.id] = SUPERUSER_ONLY[e.desc]
        elif e.desc in ROUTINES and e.sql:
            lang = re.search(r"^\s+LANGUAGE (\w+)", e.sql, re.M)
            if lang and lang.group(1).lower() not in trusted_langs:
                skip[e.id] = f"written in the untrusted language {lang.group(1)}: only a superuser may create it"
            elif re.search(r"^\s+LANGUAGE \w+.*\bLEAKPROOF\b", e.sql, re.M):
                skip[e.id] = "LEAKPROOF: only a superuser may declare it"
            else:
                for param in re.findall(r"^\s+SET (\w+) (?:TO|=) ", e.sql, re.M):
                    if param.lower() in suset:
                        skip[e.id] = f"sets the superuser-only parameter {param}"
        elif e.desc == "CAST" and e.sql:
            m = re.search(r"CREATE CAST \((.+?) AS (.+?)\)", e.sql)
            types = {t.strip() for t in m.groups()} if m else set()
            if "WITHOUT FUNCTION" in e.sql or "WITH INOUT" in e.sql:
                skip[e.id] = "a binary-coercible or INOUT cast needs a superuser"
            elif not types & dump_types:
                skip[e.id] = "a cast between types the dump does not create (the restorer owns neither)"
    # Everything depending on a skipped entry is skipped too (except the extensions, which exist).
    extension_ids = {e.id for e in entries if e.desc == "EXTENSION"}
    label = {e.id: e.label() for e in entries}
    changed = True
    while changed:
        changed = False
        for e in entries:
            if e.id in skip:
                continue
            for d in e.deps:
                if d in skip and d not in extension_ids:
                    skip[e.id] = f"depends on the skipped {label[d]}"
                    changed = True
                    break
    return skip, extensions, fatal


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dump", type=Path)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dbname", required=True)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/research15/work"))
    ap.add_argument("--superuser-password-file", type=Path)
    ap.add_argument("--count", nargs="*", default=[], help="tables whose rows to count as reader")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plan-only", action="store_true")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    timings = {}
    t0 = time.monotonic()
    su_pw = args.superuser_password_file.read_text().strip() if args.superuser_password_file else ""
    su = Psql(args.port, "postgres", su_pw)

    # 1. Roles and the database (superuser). Random passwords, never on a command line.
    restorer_pw, reader_pw = secrets.token_hex(24), secrets.token_hex(24)
    su(f"""DO $$BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'restorer') THEN
        CREATE ROLE restorer LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;  -- not NOINHERIT: public belongs to pg_database_owner
      END IF;
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reader') THEN
        CREATE ROLE reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS;
      END IF; END$$;
      ALTER ROLE restorer PASSWORD {literal(restorer_pw)};
      ALTER ROLE reader PASSWORD {literal(reader_pw)};
      ALTER ROLE reader SET default_transaction_read_only = on;
      GRANT pg_read_all_data TO reader;""")
    timings["roles_seconds"] = round(time.monotonic() - t0, 3)
    su(f"CREATE DATABASE {ident(args.dbname)} OWNER restorer TEMPLATE template0")
    timings["createdb_seconds"] = round(time.monotonic() - t0 - timings["roles_seconds"], 3)
    # Defence in depth: the restorer must hold none of the server-side file/program roles.
    bad = su("SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
             "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname IN ('restorer', 'reader') AND b.rolname IN "
             "('pg_execute_server_program','pg_read_server_files','pg_write_server_files')")
    assert not bad, bad

    # 2. Read the archive's table of contents (as plain text, no server involved).
    t_toc = time.monotonic()
    listing = run([str(BIN / "pg_restore"), "--list", str(args.dump)]).stdout
    entries = parse_list(listing)
    attach_sql(args.dump, entries, args.workdir)
    timings["toc_parse_seconds"] = round(time.monotonic() - t_toc, 3)
    available = {r[0] for r in su("SELECT name FROM pg_available_extensions")}
    timings["toc_seconds"] = round(time.monotonic() - t0, 3)  # roles + createdb + TOC

    # 3. Extensions (superuser), before the restorer has put anything in the database.
    _, extensions, fatal = plan(entries, available, set(), set(), set())
    if fatal:
        print("\n".join(fatal), file=sys.stderr)
        return 2
    schemas_in_dump = {e.name: e for e in entries if e.desc == "SCHEMA"}
    precreated_schemas = []
    for name, schema in extensions:
        if schema != "public" and schema in schemas_in_dump and schema not in precreated_schemas:
            su(f"CREATE SCHEMA IF NOT EXISTS {ident(schema)} AUTHORIZATION restorer", dbname=args.dbname)
            precreated_schemas.append(schema)
        su(f"CREATE EXTENSION IF NOT EXISTS {ident(name)} WITH SCHEMA {ident(schema)} CASCADE", dbname=args.dbname)
    # Foreign servers of a pre-created FDW extension need USAGE; extension config tables
    # (postgis' spatial_ref_sys) get their rows from the dump, so the restorer must write them.
    su("""DO $$DECLARE r record; BEGIN
      FOR r IN SELECT w.fdwname FROM pg_foreign_data_wrapper w JOIN pg_depend d ON d.classid = 'pg_foreign_data_wrapper'::regclass
               AND d.objid = w.oid AND d.deptype = 'e' LOOP
        EXECUTE format('GRANT USAGE ON FOREIGN DATA WRAPPER %I TO restorer', r.fdwname); END LOOP;
      FOR r IN SELECT unnest(extconfig)::regclass AS t FROM pg_extension WHERE extconfig IS NOT NULL LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON %s TO restorer', r.t); END LOOP;
      END$$""", dbname=args.dbname)
    trusted = {r[0] for r in su("SELECT lanname FROM pg_language WHERE lanpltrusted", dbname=args.dbname)}
    suset = {r[0].lower() for r in su("SELECT name FROM pg_settings WHERE context IN ('superuser', 'postmaster', "
                                       "'sighup', 'superuser-backend', 'backend', 'internal')")}
    dump_types = set()
    for e in entries:
        if e.desc in ("TYPE", "DOMAIN", "SHELL TYPE", "TABLE", "VIEW", "MATERIALIZED VIEW"):
            dump_types |= {f"{e.schema}.{e.name}", e.name}
    skip, extensions, _ = plan(entries, available, trusted, suset, dump_types)
    for e in entries:
        if e.desc == "SCHEMA" and e.name in precreated_schemas:
            skip[e.id] = "pre-created (AUTHORIZATION restorer) to hold an extension"
    timings["precreate_seconds"] = round(time.monotonic() - t0 - timings["toc_seconds"], 3)

    # 4. The filtered list file: skipped entries commented out (';' starts a comment).
    list_file = args.workdir / f"{args.dbname}.restore.list"
    list_file.write_text("".join((";" if e.id in skip else "") + e.line + "\n" for e in entries))
    skipped = [{"id": e.id, "type": e.desc, "schema": e.schema, "name": e.name, "reason": skip[e.id]}
               for e in entries if e.id in skip]
    report = {"skipped": skipped, "extensions": extensions}
    # For the demo scripts: hand the role passwords over in a private file.
    creds = args.workdir / f"{args.dbname}.creds.json"
    creds.write_text(json.dumps({"restorer": restorer_pw, "reader": reader_pw}))
    os.chmod(creds, 0o600)
    if args.plan_only:
        print(json.dumps(report, indent=1))
        return 0

    # 5. The restore, connected AS restorer.
    argv = [str(BIN / "pg_restore"), "--no-owner", "--no-privileges", "--no-tablespaces", "--no-security-labels",
            "--no-publications", "--no-subscriptions", "--exit-on-error", f"--jobs={args.jobs}",
            f"--use-list={list_file}", f"--dbname={args.dbname}", str(args.dump)]
    restorer = Psql(args.port, "restorer", restorer_pw, args.dbname)
    t1 = time.monotonic()
    result = run(argv, env=restorer.env(), check=False, stdin=subprocess.DEVNULL)
    timings["pg_restore_seconds"] = round(time.monotonic() - t1, 3)
    report["pg_restore_exit"] = result.returncode
    report["pg_restore_stderr"] = result.stderr[-3000:]

    # 6. Counts as reader (read-only, pg_read_all_data, BYPASSRLS).
    t2 = time.monotonic()
    reader = Psql(args.port, "reader", reader_pw, args.dbname)
    counts = {}
    for table in args.count:
        rows = reader(f"SELECT count(*) FROM ONLY {table}", check=False)
        counts[table] = int(rows[0][0]) if rows else None
    report["counts"] = counts
    timings["count_seconds"] = round(time.monotonic() - t2, 3)
    timings["total_seconds"] = round(time.monotonic() - t0, 3)
    report["timings"] = timings
    text = json.dumps(report, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0 if result.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
