"""Benchmark: Restorable's verification against the same checks run by hand.

One backup (local + off-site S3 on moto's server) is made first, then, in one
process and alternating:
  (raw) the playbook's checks by hand: download the off-site copy, sha256sum
        every file of both storages, zstd -d, pg_restore --list and
        pg_restore -f /dev/null, and psql -f schema.sql into a fresh cluster
        (initdb, start, replay, stop);
  (r)   `manage.py verify RUN --inline` timed inside a worker-like process.
Also reports the local sandbox's create-start-stop time. Target: r/raw <= 1.2.

    python bench/verify.py --scale 20 --repeat 3
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

from bench.backup import BENCH_DB, PG, make_dataset, s3_client, settle, setup_panel, sh, start_moto  # noqa: E402
from bench.worker import sandbox_start_times, timed_command  # noqa: E402


def backup(env: dict) -> dict:
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "backup", "bench", "--inline", "--json"],
                            env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:] + result.stdout[-2000:])
    return json.loads(result.stdout)


def by_hand(run: dict, endpoint: str, workdir: Path, local_root: Path) -> float:
    """The checks a careful operator would script, timed end to end."""
    started = time.perf_counter()
    client = s3_client(endpoint)
    staging = workdir / "by-hand"
    staging.mkdir()
    for artifact in run["artifacts"]:
        if artifact["storage"] == "offsite":
            path = staging / artifact["name"]
            client.download_file("restorable", artifact["key"], str(path))
        else:
            path = local_root / artifact["key"]
        sh(["sha256sum", str(path)])
    sh(["zstd", "-q", "-d", str(staging / "full.dump.zst"), "-o", str(staging / "full.dump")])
    sh(["pg_restore", "--list", str(staging / "full.dump")])
    sh(["pg_restore", "--file=/dev/null", str(staging / "full.dump")])
    cluster = Path(tempfile.mkdtemp(prefix="by-hand-", dir="/tmp"))
    os.chmod(cluster, 0o755)
    shutil.chown(cluster, "postgres")
    shutil.copy(staging / "schema.sql", cluster / "schema.sql")
    binaries = "/usr/lib/postgresql/15/bin"
    as_postgres = ["runuser", "-u", "postgres", "--"]
    try:
        sh([*as_postgres, f"{binaries}/initdb", "-D", str(cluster / "data"), "-U", "postgres", "--auth=trust",
            "--no-sync"])
        sh([*as_postgres, f"{binaries}/pg_ctl", "-D", str(cluster / "data"), "-o",
            f"-p 54329 -k {cluster} -c listen_addresses=''", "-w", "-l", str(cluster / "log"), "start"])
        sh([*as_postgres, "psql", "-h", str(cluster), "-p", "54329", "-U", "postgres", "-v", "ON_ERROR_STOP=1",
            "-q", "-f", str(cluster / "schema.sql")])
        sh([*as_postgres, f"{binaries}/pg_ctl", "-D", str(cluster / "data"), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(cluster, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    proc, endpoint = start_moto()
    workdir = Path(tempfile.mkdtemp(prefix="restorable-bench-verify-"))
    try:
        s3_client(endpoint).create_bucket(Bucket="restorable")
        db_size = make_dataset(args.scale)
        env = setup_panel(workdir / "panel", endpoint)
        run = backup(env)
        raw, ours = [], []
        for _ in range(args.repeat):
            settle()
            raw.append(by_hand(run, endpoint, workdir, workdir / "panel" / "backups"))
            settle()
            ours.append(timed_command(env, "verify", str(run["id"]), "--inline", "--json")["wall"])
        sandbox = sandbox_start_times(env)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        subprocess.run(["psql", *PG, "-d", "postgres", "-qc", f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"],
                       capture_output=True)
    dump = next(a for a in run["artifacts"] if a["name"] == "full.dump.zst")
    r, h = statistics.median(ours), statistics.median(raw)
    print(f"scale {args.scale}: database {db_size / 2**20:.0f} MB, dump {dump['size'] / 2**20:.1f} MB")
    print(f"  by hand (download, sha256sum x{len(run['artifacts'])}, zstd -d, pg_restore x2, initdb+psql): {h:.2f} s")
    print(f"  Restorable verify --inline: {r:.2f} s")
    print(f"  ratio {r / h:.3f} (target <= 1.2) {'ok' if r / h <= 1.2 else 'MISSED'}")
    print(f"  sandbox create+start+stop: median {statistics.median(sandbox):.2f} s "
          f"(min {min(sandbox):.2f}, max {max(sandbox):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
