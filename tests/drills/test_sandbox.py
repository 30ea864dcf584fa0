"""Throwaway PostgreSQL: exact major version, tuned for bulk loads, always removed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backups.pgtools import ToolMissing, connect
from drills.sandboxes import LocalSandboxes, SandboxError, reap_sandboxes, sandbox_root

ROOT = Path(__file__).resolve().parents[2]


def test_local_sandbox_starts_tuned_and_is_removed(settings):
    started = time.monotonic()
    with LocalSandboxes().create(15) as sandbox:
        with connect(sandbox.conninfo()) as conn:
            assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("15")
            tuned = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                     for name in ("fsync", "full_page_writes", "synchronous_commit", "wal_level", "autovacuum")}
        directory = sandbox.directory
    assert tuned == {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off",
                     "wal_level": "minimal", "autovacuum": "off"}
    assert not directory.exists()
    assert time.monotonic() - started < 10


def test_a_sandbox_under_a_deep_data_directory_starts_on_tcp_only(settings, tmp_path):
    settings.SANDBOX_DIR = str(tmp_path / ("deep-" * 12) / "sandboxes")  # the socket path would pass 107 bytes
    with LocalSandboxes().create(15) as sandbox:
        with connect(sandbox.conninfo()) as conn:
            assert conn.execute("SHOW unix_socket_directories").fetchone()[0] == ""
            assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_a_missing_major_version_is_refused_with_how_to_install_it():
    with pytest.raises(ToolMissing) as info:
        LocalSandboxes().create(11)
    message = str(info.value)
    assert ("PostgreSQL 11" in message and "apt-get install postgresql-11" in message
            and "installed majors: 15" in message)
    assert list(sandbox_root().iterdir()) == []


def test_a_sandbox_of_a_killed_worker_is_reaped(worker_env):
    code = ("import django, sys; django.setup(); from drills.sandboxes import LocalSandboxes; "
            "s = LocalSandboxes().create(15); print(s.directory, flush=True); import time; time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code],
                            env={**worker_env, "DJANGO_SETTINGS_MODULE": "controlpanel.settings"},
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    directory = Path(proc.stdout.readline().strip())
    postmaster = int((directory / "data" / "postmaster.pid").read_text().splitlines()[0])
    os.kill(proc.pid, signal.SIGKILL)  # the worker dies mid-drill
    proc.wait()
    assert directory.exists()
    assert reap_sandboxes() == 1
    assert not directory.exists()
    for _ in range(50):
        try:
            os.kill(postmaster, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the sandbox's postmaster is still running")


def test_a_live_owners_sandbox_is_left_alone():
    with LocalSandboxes().create(15) as sandbox:
        assert reap_sandboxes() == 0
        assert sandbox.directory.exists()


def test_docker_backend_without_an_engine_says_so(settings, monkeypatch):
    from drills.sandboxes.docker import DockerSandboxes

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SandboxError, match="cannot reach a Docker engine"):
        DockerSandboxes().create(15)
