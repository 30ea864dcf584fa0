"""Both sandbox backends implement one interface (a Docker restore once crashed
on a `keep` argument only the local backend had), and one reaper rule decides
for both, from the same label."""

import inspect
import os
import socket
import time

import pytest

from drills.sandboxes import (
    LocalSandboxes,
    RunningSandbox,
    Sandbox,
    SandboxBackend,
    new_label,
    process_started,
    reapable,
)
from drills.sandboxes.docker import DockerSandbox, DockerSandboxes, container_labels, container_reapable


def parameters(function):
    return list(inspect.signature(function).parameters.values())


def test_both_backends_create_with_the_protocols_signature():
    expected = parameters(SandboxBackend.create)
    assert parameters(LocalSandboxes.create) == expected
    assert parameters(DockerSandboxes.create) == expected
    assert [p.name for p in expected] == ["self", "major", "password", "ttl_seconds", "extra_settings", "keep", "job"]


def test_both_sandboxes_are_running_sandboxes(tmp_path):
    local = Sandbox(major=15, directory=tmp_path / "pg15-x", port=5433)
    docker = DockerSandbox(15, "0123456789abcdef", 5434, "secret")
    for sandbox in (local, docker):
        assert isinstance(sandbox, RunningSandbox)
        assert sandbox.conninfo("app").port == sandbox.port
    assert local.name == "pg15-x" and docker.name == "0123456789ab"
    for name in ("conninfo", "remove", "__enter__", "__exit__"):
        assert parameters(getattr(Sandbox, name))[1:] == parameters(getattr(DockerSandbox, name))[1:], name


NOW = 1_000_000.0
NO_SUCH_PID = 4_194_305  # past the kernel's largest pid_max
LIVE, DEAD, UNKNOWN = True, False, None


@pytest.mark.parametrize("kept, expired, owner, job, reaped", [
    (False, True, LIVE, None, False),      # a PITR drill past its label's hour: its job still runs
    (False, True, LIVE, True, False),
    (False, False, DEAD, None, True),      # a killed worker's leftover
    (False, False, LIVE, False, True),     # its job ended without removing it
    (False, False, UNKNOWN, None, False),  # another host's container: only its expiry counts
    (False, True, UNKNOWN, None, True),
    (True, False, DEAD, None, False),      # a restore handed to an admin outlives its worker...
    (True, True, DEAD, None, True),        # ...until it expires
    (True, True, LIVE, False, True),       # its restore ended, its worker lives on
    (True, True, LIVE, True, False),       # still being filled by its running restore
])
def test_the_reaper_rule(kept, expired, owner, job, reaped):
    label = {"kept": kept, "expires": NOW - 1 if expired else NOW + 1}
    assert reapable(label, NOW, owner, job) is reaped


def test_a_kept_container_is_reaped_only_when_it_expires_even_when_its_worker_died(db):
    label = {**new_label(15, ttl_seconds=60, keep=True), "owner_pid": NO_SUCH_PID}
    labels = container_labels(label)
    assert not container_reapable(labels, time.time())
    assert container_reapable(labels, time.time() + 61)


def test_a_containers_live_owner_keeps_it_past_its_expiry_and_a_dead_one_does_not(db):
    label = new_label(15, ttl_seconds=60, keep=False)
    assert label["owner_pid"] == os.getpid() and label["owner_started"] == process_started(os.getpid())
    assert not container_reapable(container_labels(label), time.time() + 3600)
    dead = container_labels({**label, "owner_pid": NO_SUCH_PID})
    assert container_reapable(dead, time.time())
    reused = container_labels({**label, "owner_started": label["owner_started"] - 1})  # same pid, another process
    assert container_reapable(reused, time.time())


def test_another_hosts_container_goes_by_its_expiry(db):
    label = {**new_label(15, ttl_seconds=60, keep=False), "owner_pid": NO_SUCH_PID}
    labels = {"restorable.sandbox": container_labels(label)["restorable.sandbox"].replace(
        socket.gethostname(), "elsewhere")}
    assert not container_reapable(labels, time.time())
    assert container_reapable(labels, time.time() + 61)
