"""What the benchmarks share: a command timed inside a worker-like process,
and the sandbox start-up timing."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Long-running workers have Django set up already: time the command, not the start-up.
TIMED_COMMAND = """
import io, json, os, sys, time
import django
django.setup()
from django.core.management import call_command
out = io.StringIO()
t0 = time.perf_counter()
try:
    call_command(*sys.argv[1:], stdout=out)
except SystemExit:
    pass
result = json.loads(out.getvalue())
result["wall"] = time.perf_counter() - t0
print(json.dumps(result))
"""

SANDBOX_STARTS = """
import json, time
import django
django.setup()
from drills.sandboxes import LocalSandboxes
times = []
for _ in range(5):
    t0 = time.perf_counter()
    LocalSandboxes().create(15).remove()
    times.append(time.perf_counter() - t0)
print(json.dumps(times))
"""


def timed_command(env: dict, *args: str) -> dict:
    """manage.py ARGS (with --json) in a process of its own; its JSON plus "wall"; raises unless it succeeded."""
    result = subprocess.run([sys.executable, "-c", TIMED_COMMAND, *args], env=env, cwd=ROOT, capture_output=True,
                            text=True)
    lines = result.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{args[0]} printed nothing: {result.stderr[-3000:]}")
    data = json.loads(lines[-1])
    if data["status"] != "succeeded":
        raise RuntimeError(f"{args[0]} failed: {data['error']}")
    return data


def sandbox_start_times(env: dict) -> list[float]:
    """Create-start-stop of five local PostgreSQL 15 sandboxes, in seconds."""
    return json.loads(subprocess.run([sys.executable, "-c", SANDBOX_STARTS], env=env, cwd=ROOT, capture_output=True,
                                     text=True, check=True).stdout)
