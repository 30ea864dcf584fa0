"""Benchmark: dashboard server time with 100 databases of 1,000 runs each.

Loads the data into a scratch PostgreSQL metadata database, then requests
the overview and a database page through Django's test client (server time:
URL resolution, views, queries, templates) and reports median and p95 and
the SQL queries per page. Target: p95 <= 100 ms.

    python bench/dashboard.py --databases 100 --runs 1000 --requests 50
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
META_DB = "restorable_bench_meta"
PG = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the overview")
    args = parser.parse_args()
    subprocess.run(["psql", *PG, "-d", "postgres", "-qc", f"DROP DATABASE IF EXISTS {META_DB} WITH (FORCE)"],
                   check=True, capture_output=True)
    subprocess.run(["psql", *PG, "-d", "postgres", "-qc", f"CREATE DATABASE {META_DB}"], check=True,
                   capture_output=True)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{META_DB}"
    os.environ.setdefault("RESTORABLE_DATA_DIR", "/tmp/restorable-bench-dashboard")
    os.environ["DJANGO_SETTINGS_MODULE"] = "controlpanel.settings"
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()
    try:
        return run(args)
    finally:
        from django.db import connections

        connections.close_all()
        subprocess.run(["psql", *PG, "-d", "postgres", "-qc", f"DROP DATABASE IF EXISTS {META_DB} WITH (FORCE)"],
                       capture_output=True)


def load(databases: int, runs: int) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from backups.models import BackupRun, Database, Storage
    from controlpanel.jobs import Status
    from drills.models import Drill

    storage = Storage.objects.create(name="disk", path="/tmp/restorable-bench-dashboard/backups")
    now = timezone.now()
    for i in range(databases):
        db = Database.objects.create(name=f"db-{i:03d}", dbname=f"app{i}", primary_storage=storage,
                                     server_version=150000)
        BackupRun.objects.bulk_create(
            (BackupRun(database=db, status=Status.SUCCEEDED if j % 17 else Status.FAILED,
                       verified="passed" if j % 5 else "pending", created=now - timedelta(hours=24 * j + i),
                       started=now - timedelta(hours=24 * j + i), finished=now - timedelta(hours=24 * j + i - 1),
                       size_bytes=10_000_000 + j, stamp=f"s{j}") for j in range(runs)),
            batch_size=1000,
        )
        Drill.objects.bulk_create(Drill(database=db, status=Status.SUCCEEDED, rto_seconds=30 + j % 7,
                                        within_budget=True, created=now - timedelta(days=30 * j))
                                  for j in range(12))


def measure(client, url: str, count: int) -> tuple[list[float], int]:
    from django.db import connection

    client.get(url)  # warm caches and connections
    captured = []
    with connection.execute_wrapper(lambda execute, sql, *a: captured.append(sql) or execute(sql, *a)):
        assert client.get(url).status_code == 200
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return times, len(captured)


def run(args) -> int:
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    load(args.databases, args.runs)
    print(f"loaded {args.databases} databases x {args.runs} runs in {time.perf_counter() - started:.1f} s")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # what autovacuum does after a bulk load
    user = User.objects.create_superuser("bench", password="bench-password-1")
    client = Client()
    client.force_login(user)
    if args.profile:
        from django.db import connection

        from drills.health import databases_with_facts

        sql, params = databases_with_facts().query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN ANALYZE " + sql, params)
            print("\n".join(row[0] for row in cursor.fetchall()[:40]))
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        client.get("/")
        profiler.runcall(client.get, "/")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    for name, url in (("overview", "/"), ("database page", "/databases/db-050/")):
        times, queries = measure(client, url, args.requests)
        p95 = statistics.quantiles(times, n=20)[18]
        print(f"  {name:14} median {statistics.median(times):6.1f} ms   p95 {p95:6.1f} ms   "
              f"{queries} queries   (target p95 <= 100 ms) {'ok' if p95 <= 100 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
