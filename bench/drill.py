"""Benchmark: a restore drill against a raw `pg_restore --jobs` on the same file.

One backup (local storage) of the dataset is made first; then, alternating:
  (raw)   by hand: zstd -d the stored dump, initdb + start a default-configured
          cluster, createdb, pg_restore --jobs N, stop;
  (drill) `manage.py drill bench --inline`, timed inside a worker-like process:
          fetch with hash check, sandbox start, pg_restore --jobs N, exact row
          counts of every table.
Also reports the sandbox's start time. Target: drill/raw <= 1.15.

    python bench/drill.py --scale 20 --repeat 3
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.backup import BENCH_DB, PG, make_dataset, settle, sh  # noqa: E402
from bench.worker import sandbox_start_times, timed_command  # noqa: E402


def panel(data_dir: Path) -> dict:
    env = {**os.environ, "RESTORABLE_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
           "BENCH_DSN": f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"}
    for key in ("DATABASE_URL", "CELERY_BROKER_URL"):
        env.pop(key, None)
    manage = [sys.executable, str(ROOT / "manage.py")]
    sh([*manage, "migrate", "-v0"], env=env)
    sh([*manage, "add_storage", "local", "--local", str(data_dir / "backups")], env=env)
    sh([*manage, "add_database", "bench", "--dsn-env", "BENCH_DSN", "--storage", "local"], env=env)
    result = subprocess.run([*manage, "backup", "bench", "--inline", "--json"], env=env, capture_output=True,
                            text=True)
    run = json.loads(result.stdout)
    if run["status"] != "succeeded" or run["verified"] != "passed":
        raise RuntimeError(f"backup not verified: {run['error']}")
    env["DUMP"] = str(data_dir / "backups" / next(a["key"] for a in run["artifacts"] if a["name"] == "full.dump.zst"))
    return env


def by_hand(dump_zst: Path, jobs: int) -> float:
    """What an operator does without the panel, on a default-configured server."""
    work = Path(tempfile.mkdtemp(prefix="drill-by-hand-", dir="/tmp"))
    os.chmod(work, 0o755)
    shutil.chown(work, "postgres")
    binaries = "/usr/lib/postgresql/15/bin"
    as_postgres = ["runuser", "-u", "postgres", "--"]
    started = time.perf_counter()
    try:
        sh(["zstd", "-q", "-d", str(dump_zst), "-o", str(work / "full.dump")])
        os.chmod(work / "full.dump", 0o644)
        sh([*as_postgres, f"{binaries}/initdb", "-D", str(work / "data"), "-U", "postgres", "--auth=trust"])
        sh([*as_postgres, f"{binaries}/pg_ctl", "-D", str(work / "data"), "-o",
            f"-p 54331 -k {work} -c listen_addresses=''", "-w", "-l", str(work / "log"), "start"])
        host = ["-h", str(work), "-p", "54331", "-U", "postgres"]
        sh([*as_postgres, "createdb", *host, BENCH_DB])
        sh([*as_postgres, f"{binaries}/pg_restore", *host, "--no-owner", "--no-privileges", f"--jobs={jobs}",
            "-d", BENCH_DB, str(work / "full.dump")])
        elapsed = time.perf_counter() - started
        sh([*as_postgres, f"{binaries}/pg_ctl", "-D", str(work / "data"), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    jobs = os.cpu_count() or 1
    workdir = Path(tempfile.mkdtemp(prefix="restorable-bench-drill-"))
    try:
        db_size = make_dataset(args.scale)
        env = panel(workdir / "panel")
        raw, ours = [], []
        for _ in range(args.repeat):
            settle()
            raw.append(by_hand(Path(env["DUMP"]), jobs))
            settle()
            ours.append(timed_command(env, "drill", "bench", "--inline", "--json"))
        sandbox = sandbox_start_times(env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        subprocess.run(["psql", *PG, "-d", "postgres", "-qc", f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"],
                       capture_output=True)
    h = statistics.median(raw)
    wall = statistics.median(d["wall"] for d in ours)
    rto = statistics.median(d["rto_seconds"] for d in ours)
    restore = statistics.median(d["restore_seconds"] for d in ours)
    print(f"scale {args.scale}: database {db_size / 2**20:.0f} MB, pg_restore --jobs {jobs}")
    print(f"  by hand (zstd -d, initdb+start, createdb, pg_restore --jobs): {h:.2f} s")
    print(f"  drill --inline: {wall:.2f} s wall, RTO {rto:.2f} s (of which pg_restore {restore:.2f} s, "
          f"the rest download with hash check and exact row counts)")
    print(f"  ratio {wall / h:.3f} (target <= 1.15) {'ok' if wall / h <= 1.15 else 'MISSED'}")
    print(f"  sandbox create+start: median {statistics.median(sandbox):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
