"""Object keys cannot leave their storage: not through '..', separators,
absolute paths, backslashes, control characters or symlinks."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backups.models import Storage
from backups.storage import LocalBackend, S3Backend, StorageError, safe_key
from tests.security.hostile import FUZZ, control_chars, hostile, traversal, undecodable

key_part = st.one_of(
    traversal, hostile, undecodable, control_chars,
    st.sampled_from(["..", "../..", "/etc/passwd", "\\..\\..\\windows", "C:\\x", "//server/share", "a/../../b",
                     "./../x", "...", ".. ", " ..", "..\x00", "%2e%2e/%2f", "\u2025", "\uff0e\uff0e", "~root",
                     "run/..", "\\\\?\\C:\\", "a\\..\\..\\b", "escape/secret", "runs/../escape"]),
    st.text(st.sampled_from("./\\a\x00\x1f~é"), max_size=12),
)
key_parts = st.lists(key_part, min_size=1, max_size=5)


@FUZZ
@given(parts=key_parts)
def test_safe_key_is_a_clean_relative_key_or_refused(parts):
    try:
        key = safe_key(*parts)
    except StorageError:
        return
    segments = key.split("/")
    assert key and not key.startswith("/") and "\\" not in key
    assert all(s not in ("", ".", "..") for s in segments)
    assert not any(ord(c) < 32 for c in key)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A storage directory next to a secret it must never reach, and a symlink pointing out."""
    base = tmp_path_factory.mktemp("keys")
    (base / "secret").write_text("not yours")
    storage_dir = base / "storage"
    (storage_dir / "runs").mkdir(parents=True)
    (storage_dir / "escape").symlink_to(base)
    return storage_dir


def local(root: Path) -> LocalBackend:
    return LocalBackend(Storage(name="disk", kind=Storage.Kind.LOCAL, path=str(root)))


@FUZZ
@given(parts=key_parts)
def test_a_local_key_resolves_inside_the_storage_directory_or_is_refused(root, parts):
    backend = local(root)
    try:
        path = backend._path(backend.key(*parts))
    except StorageError:
        return
    assert path.is_relative_to(root.resolve())


@FUZZ
@given(key=key_part)
def test_a_raw_local_key_resolves_inside_the_storage_directory_or_is_refused(root, key):
    # Keys read back from the database (Artifact.key) reach _path without key().
    try:
        path = local(root)._path(key)
    except StorageError:
        return
    assert path.is_relative_to(root.resolve())


def test_a_symlink_inside_the_storage_cannot_lead_out(root):
    with pytest.raises(StorageError):
        local(root)._path("escape/secret")
    with pytest.raises(StorageError):
        list(local(root).read("escape/secret"))


@FUZZ
@given(prefix=st.sampled_from(["restorable", "prod/db", "a/b/c"]), parts=key_parts)
def test_an_s3_key_stays_under_its_prefix_or_is_refused(prefix, parts):
    backend = S3Backend(Storage(name="r2", kind=Storage.Kind.S3, bucket="b", prefix=prefix))
    try:
        key = backend.key(*parts)
    except StorageError:
        return
    # Only empty parts give the prefix itself: the prefix's own name, still not outside it.
    assert (key == prefix or key.startswith(prefix + "/")) and ".." not in key.split("/")
