"""Benchmark: the panel's base backup and PITR restore against the same
pgBackRest commands run by hand, and archive lag under a pgbench write load.

On an archiving cluster (pgbench scale --scale) with PITR enabled:
  base backup   `pgbackrest backup --type=full` by hand vs the panel's job;
  PITR restore  `pgbackrest restore --type=time` + pg_ctl start + wait for
                promotion by hand vs the panel's restore_to_sandbox;
  archive lag   pgbench -c 2 for --load seconds while pg_stat_archiver is
                sampled: WAL segments written but not yet archived.
Targets: both ratios <= 1.1; the lag does not grow.

    python bench/pitr.py --scale 20 --repeat 3 --load 60
"""

import argparse
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
os.environ.setdefault("RESTORABLE_DATA_DIR", tempfile.mkdtemp(prefix="restorable-bench-pitr-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "controlpanel.settings"
for key in ("DATABASE_URL", "CELERY_BROKER_URL"):
    os.environ.pop(key, None)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402


def segment_number(name: str) -> int:
    return int(name[8:16], 16) * 0x100 + int(name[16:24], 16)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--load", type=int, default=60, help="seconds of pgbench write load")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)

    from backups.models import BaseBackup, Database, PitrSetup, Storage
    from backups.pgbackrest import PgBackRest, as_owner
    from backups.pitr import enable, setup_for
    from drills.pitr import remove_sandbox, restore_to_sandbox
    from drills.sandboxes import LocalSandboxes, Sandbox, bin_dir

    engine = PgBackRest(PitrSetup(stanza="bench"))
    cluster = LocalSandboxes().create(15, extra_settings={
        "wal_level": "replica", "archive_mode": "on", "archive_command": f"'{engine.archive_command()}'",
        "archive_timeout": "60", "max_wal_senders": "2", "fsync": "on", "synchronous_commit": "on",
        "full_page_writes": "on"})
    pg = ["-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres"]
    try:
        subprocess.run(["pgbench", *pg, "-i", "-q", "-s", str(args.scale), "postgres"], check=True, capture_output=True)
        storage = Storage.objects.create(name="disk", path=os.environ["RESTORABLE_DATA_DIR"] + "/backups")
        database = Database.objects.create(name="bench", port=cluster.port, dbname="postgres", primary_storage=storage,
                                           server_version=150000)
        setup = setup_for(database, repo_path=os.environ["RESTORABLE_DATA_DIR"] + "/repo")
        report = enable(setup)
        assert report.ok, [s.__dict__ for s in report.steps]
        setup = PitrSetup.objects.get(pk=setup.pk)
        base = PgBackRest(setup).base_argv()

        hand_backup, panel_backup = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            subprocess.run(as_owner([*base, "--repo=1", "--type=full", "backup"]), check=True, capture_output=True)
            hand_backup.append(time.perf_counter() - started)
            started = time.perf_counter()
            job = (BaseBackup.objects.create(database=database, kind="full")).execute()
            panel_backup.append(time.perf_counter() - started)
            assert job.status == "succeeded", job.error

        subprocess.run(["psql", *pg, "-qc",
                        "INSERT INTO pgbench_history SELECT 1, 1, 1, 1, now() FROM generate_series(1, 1000)"],
                       check=True)
        time.sleep(1)
        target = subprocess.run(["psql", *pg, "-Atc", "SELECT clock_timestamp()"], check=True, capture_output=True,
                                text=True).stdout.strip()
        time.sleep(1)
        # Recovery stops at the first commit after the target: there must be one.
        subprocess.run(["psql", *pg, "-qc", "INSERT INTO pgbench_history SELECT 2, 2, 2, 2, now()"], check=True)
        PgBackRest(setup).check()
        from django.utils.dateparse import parse_datetime

        target_dt = parse_datetime(target.replace(" ", "T", 1))
        hand_restore, panel_restore = [], []
        for _ in range(args.repeat):
            hand_restore.append(restore_by_hand(setup, base, target_dt, bin_dir(15), as_owner, Sandbox))
            started = time.perf_counter()
            sandbox, _ = restore_to_sandbox(setup, target_dt, 600, keep=False)
            panel_restore.append(time.perf_counter() - started)
            remove_sandbox(sandbox)

        lag = archive_lag_under_load(pg, args.load)
    finally:
        cluster.remove()
    b_hand, b_panel = statistics.median(hand_backup), statistics.median(panel_backup)
    r_hand, r_panel = statistics.median(hand_restore), statistics.median(panel_restore)
    print(f"pgbench scale {args.scale}, {args.repeat} runs each")
    print(f"  base backup: by hand {b_hand:.2f} s, panel {b_panel:.2f} s, ratio {b_panel / b_hand:.3f} (target <= 1.1)")
    print(f"  PITR restore: by hand {r_hand:.2f} s, panel {r_panel:.2f} s, "
          f"ratio {r_panel / r_hand:.3f} (target <= 1.1)")
    print(f"  archive lag under {args.load} s of pgbench: segments not yet archived, sampled every 5 s: {lag}")
    first, last = statistics.mean(lag[: len(lag) // 2] or [0]), statistics.mean(lag[len(lag) // 2:] or [0])
    print(f"  first half mean {first:.1f}, second half mean {last:.1f}: "
          f"{'keeps up' if last <= first + 1 else 'GROWING'}")
    return 0


def restore_by_hand(setup, base, target, binaries, as_owner, Sandbox) -> float:
    from drills.sandboxes import free_port, sandbox_root

    work = Path(tempfile.mkdtemp(prefix="by-hand-", dir=sandbox_root()))
    os.chmod(work, 0o755)
    shutil.chown(work, "postgres")
    data = work / "data"
    data.mkdir(mode=0o700)
    shutil.chown(data, "postgres")
    port = free_port()
    started = time.perf_counter()
    try:
        stamp = target.strftime("%Y-%m-%d %H:%M:%S.%f%z")
        subprocess.run(as_owner([*base, f"--pg1-path={data}", "--type=time", f"--target={stamp}",
                                 "--target-action=promote", "--archive-mode=off", "restore"]),
                       check=True, capture_output=True)
        with open(data / "postgresql.auto.conf", "a") as conf:
            conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{work}'\n"
                       "hot_standby = off\nmax_wal_senders = 10\n")
        started_ok = subprocess.run(as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(work / "log"),
                                              "-w", "start"]), capture_output=True, text=True)
        if started_ok.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {started_ok.stderr}\n{(work / 'log').read_text()[-1500:]}")
        deadline = time.monotonic() + 300
        while True:
            result = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-Atc",
                                     "SELECT pg_is_in_recovery()"], capture_output=True, text=True)
            if result.stdout.strip() == "f":
                break
            if time.monotonic() > deadline:
                log = (work / "log").read_text() if (work / "log").exists() else "no log"
                raise RuntimeError(f"by-hand restore did not finish recovery: {result.stderr}\n{log[-1500:]}")
            time.sleep(0.2)
        return time.perf_counter() - started
    finally:
        subprocess.run(as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def archive_lag_under_load(pg, seconds: int) -> list[int]:
    load = subprocess.Popen(["pgbench", *pg, "-c", "2", "-T", str(seconds), "-N", "postgres"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    while load.poll() is None:
        time.sleep(5)
        row = subprocess.run(["psql", *pg, "-AtF", " ", "-c",
                              "SELECT pg_walfile_name(pg_current_wal_lsn()), coalesce(last_archived_wal, '') "
                              "FROM pg_stat_archiver"], capture_output=True, text=True).stdout.split()
        if len(row) == 2 and len(row[1]) >= 24:
            samples.append(segment_number(row[0]) - segment_number(row[1][:24]) - 1)
    return samples


if __name__ == "__main__":
    sys.exit(main())
