"""Streaming age (X25519) encryption on top of pyrage, for a push-style pipeline.

pyrage (Rust bindings to the `age` crate used by rage) has no incremental
writer class. Its streaming entry points are *pull* functions that run to the
end of the input:

    pyrage.encrypt_io(reader, writer, recipients, armored=False) -> None
    pyrage.decrypt_io(reader, writer, identities) -> None

`reader` needs .read(n) returning bytes (at most n), `writer` needs
.write(b) returning an int (None is an error). Rust wraps both in 8 KiB
BufReader/BufWriter and age's STREAM writer, so memory stays flat: reads of
<= 8 KiB, writes of one 64 KiB+16 ciphertext chunk at a time.

To fit the backup pipeline, which *pushes* 1 MiB compressed chunks into a
Tee, AgeWriter runs encrypt_io on its own thread and feeds it through an
os.pipe(): the pipe bounds memory (<= pipe size) and a blocking read releases
the GIL. pyrage does NOT release the GIL while it encrypts (no
allow_threads), so other Python threads only run when the encrypting thread is
blocked on the pipe or inside the sink's write (hashlib and file/socket I/O
release the GIL).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading

import pyrage
from pyrage import x25519

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


# ---------------------------------------------------------------- key files

def parse_recipients(text: str) -> list:
    """Parse an age recipients file (what `age -R FILE` reads).

    One recipient per line; blank lines and lines starting with '#' are
    ignored (age's own rule). age1... -> X25519, ssh-ed25519/ssh-rsa -> SSH.
    Raises ValueError naming the line on anything else.
    """
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("age1"):
                out.append(x25519.Recipient.from_str(line))
            elif line.startswith(("ssh-ed25519 ", "ssh-rsa ")):
                out.append(pyrage.ssh.Recipient.from_str(line))
            else:
                raise ValueError("unknown recipient type")
        except Exception as exc:  # pyrage.RecipientError is not a ValueError
            raise ValueError(f"recipients line {number}: {exc}") from None
    if not out:
        raise ValueError("no recipients found")
    return out


def parse_identities(text: str) -> list:
    """Parse an age identity file (age-keygen output; what `age -d -i FILE` reads).

    Comment lines ('# created: ...', '# public key: age1...') and blank lines
    are skipped; every other line must be an AGE-SECRET-KEY-1... string.
    The error never echoes the key material.
    """
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(x25519.Identity.from_str(line))
        except Exception:
            raise ValueError(f"identity line {number} is not an AGE-SECRET-KEY-1... key") from None
    if not out:
        raise ValueError("no identities found")
    return out


def generate_identity_file() -> tuple[str, str]:
    """A new key in age-keygen's file format: (file text, public recipient)."""
    import datetime

    ident = x25519.Identity.generate()
    public = str(ident.to_public())
    created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    return f"# created: {created}\n# public key: {public}\n{ident}\n", public


# ---------------------------------------------------------------- sinks

class HashingSink:
    """What pyrage writes into: hashes and counts the stored bytes, passes them on.

    write() must return the byte count: pyo3-file treats None as an error.
    """

    def __init__(self, target=None):
        self.target = target  # anything with .write(bytes); None = discard
        self.digest = hashlib.sha256()
        self.size = 0
        self.error: BaseException | None = None  # the target's own exception (pyrage would flatten it)

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        if self.target is not None:
            try:
                self.target.write(data)
            except BaseException as exc:
                self.error = exc
                raise
        return len(data)

    def flush(self) -> None:
        pass


# ---------------------------------------------------------------- push writer

class AgeWriter:
    """Push-style streaming age encryption: write() plaintext, close() to finish.

        w = AgeWriter(recipients, sink)      # sink.write(bytes) -> int
        for chunk in chunks: w.write(chunk)
        w.close()                            # raises what encryption raised
        # or w.abort() on failure

    Output is a standard binary age v1 file (decrypts with `age -d -i key`).
    Memory: one pipe buffer + 64 KiB in Rust, whatever the stream size.
    """

    def __init__(self, recipients, sink, pipe_size: int = 1024 * 1024, armored: bool = False):
        if not recipients:
            raise ValueError("at least one recipient is required")
        read_fd, write_fd = os.pipe()
        try:
            fcntl.fcntl(write_fd, F_SETPIPE_SZ, pipe_size)
        except OSError:
            pass  # keep the default 64 KiB
        self._source = _Source(os.fdopen(read_fd, "rb", buffering=0))  # FileIO: read() releases the GIL
        self._fd = write_fd
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(list(recipients), sink, armored),
                                        name="age-encrypt", daemon=True)
        self._thread.start()

    def _run(self, recipients, sink, armored) -> None:
        try:
            pyrage.encrypt_io(self._source, sink, recipients, armored)
        except BaseException as exc:
            # pyrage turns a Python exception raised in sink.write into
            # EncryptError("StorageError: ..."): re-raise the original one.
            self._error = getattr(sink, "error", None) or exc
        finally:
            self._source.close()  # a writer blocked on a full pipe gets EPIPE instead of hanging

    def write(self, data) -> int:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except BrokenPipeError:
            self._thread.join()
            raise self._error or RuntimeError("age encryption stopped early") from None
        return len(data)

    def close(self) -> None:
        if self._fd < 0:
            return
        os.close(self._fd)  # EOF: pyrage writes the final chunk
        self._fd = -1
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop without a valid file.

        A plain EOF would make pyrage write the final chunk: a *valid* age
        file of a truncated dump. The source raises instead, so the last
        chunk is never written and age rejects what reached the sink.
        """
        self._source.aborted = True
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._thread.join()


class _Source:
    """The pipe's read end as pyrage sees it; EOF after abort() is an error."""

    def __init__(self, raw):
        self.raw, self.aborted = raw, False

    def read(self, n: int) -> bytes:
        data = self.raw.read(n)
        if not data and self.aborted:
            raise OSError("aborted")
        return data

    def close(self) -> None:
        self.raw.close()


# ---------------------------------------------------------------- decryption

def decrypt_stream(source, target, identities) -> None:
    """Streaming decrypt: source.read(n) -> ciphertext, target.write(b) -> int.

    Fails with pyrage.DecryptError on a wrong key, a bad header MAC, a
    tampered chunk or a truncated file (the last chunk must be flagged final).
    Plaintext is written chunk by chunk *before* the end is authenticated:
    write to a temporary place and only use it once this returns.
    """
    pyrage.decrypt_io(source, target, identities)


# ---------------------------------------------------------------- out-of-process variant

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "age_encrypt_child.py")


def pyrage_child_argv(recipients) -> list[str]:
    """pyrage.encrypt_file('/dev/stdin', '/dev/stdout') in a child interpreter (a PyPI library, no GIL shared)."""
    import sys
    return [sys.executable, CHILD, *map(str, recipients)]


def age_cli_argv(recipients) -> list[str]:
    """Debian's `age` binary (apt-get install age)."""
    return ["age", *(arg for r in recipients for arg in ("-r", str(r)))]


class AgeProcessWriter:
    """Same interface as AgeWriter; the encryption runs in a child process.

    Parent: write() puts 1 MiB chunks on the child's stdin (the syscall
    releases the GIL); a drain thread reads the ciphertext 1 MiB at a time
    into the sink (hash + storage). Only *public* recipients go on argv.
    """

    def __init__(self, recipients, sink, argv_for=pyrage_child_argv, pipe_size: int = 1024 * 1024):
        import subprocess
        if not recipients:
            raise ValueError("at least one recipient is required")
        self.sink, self._error = sink, None
        self.proc = subprocess.Popen(argv_for(recipients), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0, close_fds=True)
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, pipe_size)
            except OSError:
                pass
        self._thread = threading.Thread(target=self._drain, args=(pipe_size,), name="age-drain", daemon=True)
        self._thread.start()

    def _drain(self, size) -> None:
        try:
            while data := self.proc.stdout.read(size):
                self.sink.write(data)
        except BaseException as exc:
            self._error = exc
            self.proc.kill()  # the parent's next write gets EPIPE

    def write(self, data) -> int:
        view = memoryview(data)
        try:
            while view:  # raw FileIO (bufsize=0) may write partially
                view = view[self.proc.stdin.write(view):]
        except BrokenPipeError:
            self._finish()
            raise RuntimeError("age child stopped early") from None
        return len(data)

    def _finish(self) -> None:
        self._thread.join()
        code = self.proc.wait()
        err = self.proc.stderr.read().decode(errors="replace").strip()
        if self._error is not None:
            raise self._error
        if code != 0:
            raise RuntimeError(f"age encryption failed (exit {code}): {err[:500]}")

    def close(self) -> None:
        self.proc.stdin.close()
        self._finish()

    def abort(self) -> None:
        self.proc.kill()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self._thread.join()
        self.proc.wait()
