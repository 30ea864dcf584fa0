"""Benchmark: Restorable's streaming backup against the playbook and raw pg_dump.

In one process, on the same dataset and the same S3 endpoint (moto's server
on loopback):
  (a) the playbook: pg_dump -Fc -Z9 to a file, then sha256sum, then an upload
  (b) Restorable: `manage.py backup --inline` (local copy + off-site S3)
  (c) raw pg_dump -Fc -Z0 > /dev/null
  (d) Restorable with its local storage only: the pipeline's own overhead,
      without the S3 test server's CPU on the same cores
Prints wall time, CPU, peak RSS and size for each, and the ratios against the
targets of the logical-backup issue. Dataset: pgbench tables plus a table of
random text so compression is realistic; --scale sets the size.

    python bench/backup.py --scales 10,40 --repeat 3
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
BENCH_DB = "restorable_bench"
TARGETS = {"wall_b_over_a": 0.35, "size_b_over_a": 1.05, "wall_b_over_c": 1.6, "worker_rss_mb": 150}


def sh(argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def make_dataset(scale: int) -> int:
    sh(["psql", *PG, "-d", "postgres", "-qc", f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"])
    sh(["psql", *PG, "-d", "postgres", "-qc", f"CREATE DATABASE {BENCH_DB}"])
    sh(["pgbench", *PG, "-i", "-q", "-s", str(scale), BENCH_DB])
    rows = scale * 50_000
    sh(["psql", *PG, "-d", BENCH_DB, "-qc",
        "CREATE TABLE notes AS SELECT i AS id, now() - i * interval '1 minute' AS created, "
        "md5(i::text) || ' ' || repeat(substr(md5(random()::text), 1, 1 + (random() * 20)::int), (random() * 8)::int) "
        "|| ' order ' || (random() * 100000)::int || ' shipped to customer ' || md5(random()::text) AS body "
        f"FROM generate_series(1, {rows}) i"])
    sh(["psql", *PG, "-d", BENCH_DB, "-qc", "VACUUM ANALYZE"])
    return int(sh(["psql", *PG, "-d", BENCH_DB, "-Atc", "SELECT pg_database_size(current_database())"]).stdout)


def free_port() -> int:
    """A free loopback port (the parent process needs no Django for this)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            s3_client(endpoint).list_buckets()
            return proc, endpoint
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("moto server did not start")


def s3_client(endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench")


def child_times():
    usage = os.times()
    return usage.children_user + usage.children_system, usage.user + usage.system


def settle() -> None:
    """Let the previous step's dirty pages reach the disk before timing the next."""
    os.sync()
    time.sleep(1)


def measure(fn) -> dict:
    settle()
    child0, self0 = child_times()
    start = time.perf_counter()
    extra = fn() or {}
    wall = time.perf_counter() - start
    child1, self1 = child_times()
    return {"wall": wall, "cpu": (child1 - child0) + (self1 - self0), **extra}


def playbook(workdir: Path, endpoint: str) -> dict:
    """(a): the playbook's cron script, step after step."""
    dump = workdir / "full.dump"
    sh(["pg_dump", *PG, "--format=custom", "--compress=9", "--no-owner", "--no-privileges",
        f"--file={dump}", BENCH_DB])
    sh(["sha256sum", str(dump)])
    s3_client(endpoint).upload_file(str(dump), "playbook", f"{BENCH_DB}/full.dump")
    size = dump.stat().st_size
    dump.unlink()
    return {"size": size}


def raw_dump() -> dict:
    """(c): raw pg_dump -Z0 to /dev/null."""
    with open(os.devnull, "wb") as devnull:
        subprocess.run(["pg_dump", *PG, "--format=custom", "--compress=0", BENCH_DB], stdout=devnull, check=True)
    return {}


# The worker is a long-running process: time the backup inside it, not the
# interpreter and Django start-up of this one-off process. It does what the
# dumps worker's task does: the backup, then the verification handed to the
# drills queue (a broker message; bench/verify.py measures the verification).
WORKER = """
import json, os, resource, time
import django
django.setup()
from backups.management.commands.backup import run_as_dict
from backups.models import Database
from backups.services import create_backup_run
from controlpanel.jobs import Trigger
import backups.pipeline  # loaded once per worker process, not per backup
run = create_backup_run(Database.objects.get(name=os.environ.get("BENCH_TARGET", "bench")), Trigger.API)
t0, c0 = time.perf_counter(), os.times()
run.execute()
wall, c1 = time.perf_counter() - t0, os.times()
run.refresh_from_db()
result = run_as_dict(run)
result["wall"] = wall
result["cpu"] = (c1.user + c1.system - c0.user - c0.system) + (c1.children_user + c1.children_system
                 - c0.children_user - c0.children_system)
result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
result["verification_queued"] = run.verifications.exists()
print(json.dumps(result, default=str))
"""


def restorable(env: dict) -> dict:
    """(b): a backup run in a worker-like process of its own."""
    result = subprocess.run([sys.executable, "-c", WORKER], env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    run = json.loads(result.stdout.strip().splitlines()[-1])
    if run["status"] != "succeeded":
        raise RuntimeError(f"backup failed: {run['error']}")
    dump = next(a for a in run["artifacts"] if a["name"].startswith("full.dump"))
    if not run["verification_queued"]:
        raise RuntimeError("the backup did not hand its verification to the drills queue")
    return {"wall": run["wall"], "cpu": run["cpu"], "size": dump["size"], "peak_rss_mb": run["peak_rss_mb"],
            "compression": run["compression"]}


def setup_panel(data_dir: Path, endpoint: str) -> dict:
    env = {**os.environ, "RESTORABLE_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
           "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "BENCH_DSN": f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"}
    for key in ("DATABASE_URL", "CELERY_BROKER_URL"):
        env.pop(key, None)
    manage = [sys.executable, str(ROOT / "manage.py")]
    sh([*manage, "migrate", "-v0"], env=env)
    sh([*manage, "add_storage", "local", "--local", str(data_dir / "backups")], env=env)
    sh([*manage, "add_storage", "offsite", "--s3-endpoint", endpoint, "--bucket", "restorable",
        "--region", "us-east-1", "--path-style"], env=env)
    sh([*manage, "add_database", "bench", "--dsn-env", "BENCH_DSN", "--storage", "local", "--offsite", "offsite"],
       env=env)
    sh([*manage, "add_database", "bench-local", "--dsn-env", "BENCH_DSN", "--storage", "local"], env=env)
    return env


def empty_buckets(endpoint: str) -> None:
    client = s3_client(endpoint)
    for bucket in ("playbook", "restorable"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])


def median_of(samples: list[dict]) -> dict:
    keys = [k for k, v in samples[0].items() if isinstance(v, (int, float))]
    out = {k: statistics.median(s[k] for s in samples) for k in keys}
    out.update({k: v for k, v in samples[0].items() if not isinstance(v, (int, float))})
    return out


def bench_scale(scale: int, repeat: int, endpoint: str) -> dict:
    db_size = make_dataset(scale)
    raw_dump()  # warm the cache the same way for every contender
    workdir = Path(tempfile.mkdtemp(prefix="restorable-bench-"))
    try:
        env = setup_panel(workdir / "panel", endpoint)
        results = {"a": [], "b": [], "c": [], "d": []}
        for _ in range(repeat):
            results["c"].append(measure(raw_dump))
            results["a"].append(measure(lambda: playbook(workdir, endpoint)))
            settle()
            results["b"].append(restorable(env))
            settle()
            results["d"].append(restorable({**env, "BENCH_TARGET": "bench-local"}))
            empty_buckets(endpoint)
        shutil.rmtree(workdir / "panel" / "backups", ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    a, b, c, d = (median_of(results[k]) for k in "abcd")
    return {
        "scale": scale, "database_bytes": db_size, "a": a, "b": b, "c": c, "d": d,
        "wall_d_over_c": d["wall"] / c["wall"],
        "wall_b_over_a": b["wall"] / a["wall"], "size_b_over_a": b["size"] / a["size"],
        "wall_b_over_c": b["wall"] / c["wall"], "worker_rss_mb": b["peak_rss_mb"],
    }


def report(result: dict) -> None:
    mb = 1024 * 1024
    print(f"\nscale {result['scale']}: database {result['database_bytes'] / mb:.0f} MB")
    print(f"  {'':34} {'wall s':>8} {'cpu s':>8} {'size MB':>9} {'rss MB':>8}")
    names = {"a": "(a) playbook -Z9 + sha256 + upload", "b": "(b) Restorable backup",
             "c": "(c) raw pg_dump -Z0 > /dev/null", "d": "(d) Restorable, local storage only"}
    for key, name in names.items():
        row = result[key]
        size = f"{row['size'] / mb:9.1f}" if "size" in row else f"{'':>9}"
        rss = f"{row['peak_rss_mb']:8.0f}" if "peak_rss_mb" in row else f"{'':>8}"
        print(f"  {name:34} {row['wall']:8.2f} {row['cpu']:8.2f} {size} {rss}")
    print(f"  compression of (b): {result['b'].get('compression')}")
    print(f"  wall_d_over_c    {result['wall_d_over_c']:7.3f}  (no target: the pipeline without the S3 server)")
    for key, limit in TARGETS.items():
        value = result[key]
        verdict = "ok" if value <= limit else "MISSED"
        print(f"  {key:16} {value:7.3f}  (target <= {limit})  {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="10,40", help="pgbench scales to run (comma-separated)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")
    proc, endpoint = start_moto()
    try:
        client = s3_client(endpoint)
        client.create_bucket(Bucket="playbook")
        client.create_bucket(Bucket="restorable")
        results = []
        for scale in [int(s) for s in args.scales.split(",")]:
            results.append(bench_scale(scale, args.repeat, endpoint))
            report(results[-1])
    finally:
        proc.terminate()
        proc.wait()
        subprocess.run(["psql", *PG, "-d", "postgres", "-qc", f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"],
                       capture_output=True)
    if len(results) > 1:
        growth = results[-1]["worker_rss_mb"] - results[0]["worker_rss_mb"]
        print(f"\nworker peak RSS from scale {results[0]['scale']} to {results[-1]['scale']}: {growth:+.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
