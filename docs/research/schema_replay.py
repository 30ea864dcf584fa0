#!/usr/bin/env python3
"""Replay schema.sql (pg_dump -s --no-owner --no-privileges, plain SQL) as the NON-superuser restorer.

1. safe_restore.py --plan-only: roles, a database OWNER restorer, the extensions the dump's TOC
   names pre-created by the superuser, and the list of entries a non-superuser cannot restore
   (by type, schema and name, dependents included: the custom-format TOC has the dependencies).
2. schema.sql is cut into pg_dump's blocks at its "-- Name: N; Type: T; Schema: S; Owner: O" headers;
   the blocks matching a skipped entry are left out and reported.
3. psql -v ON_ERROR_STOP=1 as restorer (\\restrict lines are fine for psql 15.14+).
--raw: replay the unfiltered file with ON_ERROR_STOP=0 and list every error instead.
Usage: schema_replay.py DUMP SCHEMA_SQL --port P --superuser-password-file F [--dbname D] [--raw]
"""
import argparse, json, os, re, subprocess, sys
from pathlib import Path

R = Path(__file__).resolve().parent
BIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))
HEADER = re.compile(r"^--\n-- Name: (.*?); Type: (.*?); Schema: (.*?); Owner: .*\n--\n", re.M)


def blocks(text):
    marks = list(HEADER.finditer(text))
    yield None, text[: marks[0].start()] if marks else text
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        yield (m.group(2), m.group(3), m.group(1)), text[m.start():end]


def toc_key(item):
    """A pg_restore -l entry as the plain-SQL header names it."""
    name = item["name"]
    if item["type"] in ("FUNCTION", "PROCEDURE", "AGGREGATE"):
        name = name  # "f(integer)" in both
    return (item["type"], item["schema"], name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump"); ap.add_argument("schema_sql", type=Path)
    ap.add_argument("--port", type=int, required=True); ap.add_argument("--superuser-password-file", required=True)
    ap.add_argument("--dbname", default="schema_replay"); ap.add_argument("--raw", action="store_true")
    ap.add_argument("--workdir", default="/tmp/research15/work")
    args = ap.parse_args()
    out = subprocess.run([sys.executable, str(R / "safe_restore.py"), args.dump, "--port", str(args.port),
                          "--dbname", args.dbname, "--superuser-password-file", args.superuser_password_file,
                          "--workdir", args.workdir, "--plan-only"], capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr)
    planned = json.loads(out.stdout)
    creds = json.loads(Path(args.workdir, f"{args.dbname}.creds.json").read_text())
    text = args.schema_sql.read_text()
    if args.raw:
        kept, dropped = text, []
    else:
        skip = {toc_key(s): s["reason"] for s in planned["skipped"]}
        kept_parts, dropped = [], []
        for key, body in blocks(text):
            # COMMENT headers say "Schema: -" for extensions, like the TOC; EXTENSION blocks are pre-created.
            if key is not None and key in skip:
                dropped.append(f"{key[0]} {key[1]}.{key[2]}: {skip[key]}")
            else:
                kept_parts.append(body)
        kept = "".join(kept_parts)
        # The sandbox has none of the source's tablespaces (pg_restore --no-tablespaces does the same).
        kept, n = re.subn(r"^SET default_tablespace = .*;$", "SET default_tablespace = '';", kept, flags=re.M)
        if n and any("default_tablespace = ''" not in l for l in re.findall(r"^SET default_tablespace = .*;$", text, re.M)):
            dropped.append("tablespace assignments (SET default_tablespace) ignored")
    filtered = Path(args.workdir, f"{args.dbname}.filtered.sql")
    filtered.write_text(kept)
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(args.port), "PGUSER": "restorer",
           "PGPASSWORD": creds["restorer"], "PGDATABASE": args.dbname}
    res = subprocess.run([str(BIN / "psql"), "--no-psqlrc", "-q", "-v", f"ON_ERROR_STOP={0 if args.raw else 1}",
                          "-f", str(filtered)], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    errors = [l for l in res.stderr.splitlines() if "ERROR" in l]
    print(json.dumps({"psql_exit": res.returncode, "left_out": dropped, "errors": errors}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
