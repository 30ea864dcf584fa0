"""Every drills worker reaps its own host's leftover sandboxes when it starts,
without waiting for beat's task to land on its host."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_drills_worker_reaps_its_hosts_leftovers_at_start(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs: the sandbox's owner was killed
    leftover = tmp_path / "data" / "sandboxes" / "pg15-leftover"
    leftover.mkdir(parents=True)
    (leftover / "restorable-sandbox.json").write_text(json.dumps(
        {"owner_pid": dead.pid, "expires": time.time() + 3600, "major": None}))
    kept = tmp_path / "data" / "sandboxes" / "pg15-kept"  # a restore sandbox kept for hours: left alone
    kept.mkdir()
    (kept / "restorable-sandbox.json").write_text(json.dumps(
        {"owner_pid": None, "expires": time.time() + 3600, "major": None}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTORABLE_", "DATABASE_URL", "CELERY_"))}
    env.update(RESTORABLE_DATA_DIR=str(tmp_path / "data"))  # SQLite and the filesystem broker: nothing shared
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlpanel", "worker", "-Q", "drills", "--concurrency", "1",
         "-n", f"reaper{os.getpid()}@%h", "--without-mingle", "--without-gossip"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while leftover.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not leftover.exists(), "the worker did not reap its host's leftover sandbox"
        assert kept.exists()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
