"""Run web, worker and beat in one foreground command (the quick start).

Ctrl-C (or SIGTERM) stops all three; if one of them dies, the others are
stopped too, so a half-running panel never looks healthy. On the way out it
removes the sandboxes the stopped worker's jobs left, and names the kept
ones (restores handed to an admin) that stay up until they expire.
"""

import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from controlpanel.cli import TextArgsMixin
from controlpanel.env import env_int, env_str
from drills.sandboxes import SandboxError, list_sandboxes, reap_sandboxes


class Command(TextArgsMixin, BaseCommand):
    help = "Run the web server, a Celery worker and Celery beat together."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=env_str("RESTORABLE_BIND", "127.0.0.1:8000"))
        parser.add_argument("--concurrency", type=int, default=env_int("RESTORABLE_WORKER_CONCURRENCY", 2, minimum=1))

    def handle(self, *args, bind, concurrency, **options):
        python = sys.executable
        queues = ",".join(["dumps", "drills", settings.AGENT_QUEUE])
        commands = {
            "web": [python, "-m", "gunicorn", "controlpanel.wsgi", "--bind", bind, "--workers", "2",
                    "--threads", "4", "--access-logfile", "-", "--timeout", "60"],
            "worker": [python, "-m", "celery", "-A", "controlpanel", "worker", "-Q", queues,
                       "--concurrency", str(concurrency), "--loglevel", "INFO", "-n", "worker@%h"],
            "beat": [python, "-m", "celery", "-A", "controlpanel", "beat", "--loglevel", "INFO",
                     "--schedule", str(settings.DATA_DIR / "celerybeat-schedule")],
        }
        procs = {name: subprocess.Popen(argv) for name, argv in commands.items()}
        self.stdout.write(f"Restorable is running at http://{bind}/  (Ctrl-C stops web, worker and beat)")
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    self.stderr.write(f"{name} exited with status {proc.returncode}; stopping the others.")
                    exit_code, stopping = proc.returncode or 1, True
            time.sleep(0.5)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        self.report_sandboxes()
        sys.exit(exit_code)

    def report_sandboxes(self) -> None:
        """Kept sandboxes outlive the panel by design: say which, and until when."""
        try:
            reap_sandboxes()  # what the stopped worker's jobs left behind
            left = list_sandboxes()
        except (SandboxError, OSError) as exc:
            self.stderr.write(f"Could not check for sandboxes left running: {exc}")
            return
        if not left:
            return
        self.stdout.write(f"Left running: {len(left)} sandbox(es), removed when they expire by the drills "
                          "worker (at its next start if the panel is still stopped); listed at /sandboxes/.")
        for sandbox in left:
            what = f"{sandbox.job_kind} #{sandbox.job_pk}" if sandbox.job else "no job recorded"
            until = f"{timezone.localtime(sandbox.expires):%Y-%m-%d %H:%M %Z}" if sandbox.expires else "unknown"
            self.stdout.write(f"  {sandbox.name}  port {sandbox.port}  until {until}  {what}")
