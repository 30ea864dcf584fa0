"""Every CLI command answers fuzzed arguments with success, a CommandError or
a nonzero exit; never another exception and its traceback."""

import os
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import assume, event, given, reject, settings
from hypothesis import strategies as st

from backups.models import BackupRun, Database, Storage
from controlpanel.jobs import Status
from controlpanel.models import NotificationChannel
from tests.security.hostile import (
    FUZZ,
    bucket_like,
    control_chars,
    corrupted,
    cron_like,
    dsn_like,
    hostile,
    numbers_as_text,
    rolled_back,
    shell_and_sql,
    timezone_like,
    traversal,
    undecodable,
)

pytestmark = pytest.mark.django_db

CLI = settings(FUZZ, max_examples=50)  # each example is a whole command run


def outcome(*args) -> str:
    """'ok', 'refused' (CommandError) or 'failed' (nonzero exit); anything else escapes and fails the test."""
    try:
        with rolled_back():
            call_command(*args, stdout=StringIO(), stderr=StringIO())
    except CommandError:
        return "refused"
    except SystemExit as exc:
        assert exc.code not in (0, None), f"exit status {exc.code!r} with {args!r}"
        return "failed"
    return "ok"


def run_cli(*args) -> str:
    result = outcome(*args)
    event(f"{args[0]}: {result}")
    return result


def command_line(positional: list, options: dict) -> st.SearchStrategy[list[str]]:
    """Positional values, then options in any order (None: a flag), now and then a stray token.

    No NUL: a real argv cannot carry one. Undecodable bytes it can, as surrogates.
    """

    @st.composite
    def build(draw):
        args = [draw(s) for s in positional if draw(st.integers(0, 9))]  # now and then one is left out
        for name in draw(st.lists(st.sampled_from(sorted(options)), max_size=4, unique=True)):
            args.append(name)
            if options[name] is not None and draw(st.integers(0, 9)):
                args.append(draw(options[name]))
        if not draw(st.integers(0, 5)):
            args.insert(draw(st.integers(0, len(args))), draw(hostile))
        return [arg.replace("\x00", "") for arg in args]

    return build()


def undecodable_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def set_env(name: str, value: str) -> None:
    try:
        os.environ[name] = value
    except (ValueError, UnicodeEncodeError):  # NUL, or a surrogate no byte stands for: no environment can hold it
        reject()


def never_waits(args: list[str]) -> bool:
    """--wait (or any abbreviation) on a job that exists polls until a worker ends
    it, and none runs here; argparse reads " 01" or "١" as run 1, so no --wait at all."""
    return not any(a.startswith("--w") for a in args)


def not_help(args: list[str]) -> bool:
    return not any(a in ("-h", "--version") or a.startswith(("--h", "--vers")) for a in args)


@pytest.fixture
def world(db, tmp_path):
    """A storage, a database whose server database does not exist, one succeeded and one failed run."""
    disk = Storage.objects.create(name="disk", kind=Storage.Kind.LOCAL, path=str(tmp_path / "backups"))
    database = Database.objects.create(name="app", dbname="rs_fuzz_no_such_db", host="127.0.0.1", port=5432,
                                       user="postgres", primary_storage=disk)
    good = BackupRun.objects.create(database=database, status=Status.SUCCEEDED)
    bad = BackupRun.objects.create(database=database, status=Status.FAILED)
    yield {"tmp": tmp_path, "good": str(good.pk), "bad": str(bad.pk)}
    for name in ("FUZZ_DSN", "FUZZ_URL"):
        os.environ.pop(name, None)


def near(*templates: list[str]) -> st.SearchStrategy[list[str]]:
    """A valid command line with up to two values made hostile (or corrupted),
    now and then an option dropped or a stray token: close enough to pass
    argparse and reach the command's own checks and the jobs behind them."""

    @st.composite
    def build(draw):
        args = list(draw(st.sampled_from(templates)))
        values = [at for at, arg in enumerate(args) if not arg.startswith("-")]
        for at in draw(st.lists(st.sampled_from(values), max_size=2, unique=True)) if values else []:
            args[at] = draw(st.one_of(corrupted(args[at]), hostile))
        flags = [at for at, arg in enumerate(args) if arg.startswith("--")]
        if flags and not draw(st.integers(0, 4)):
            del args[draw(st.sampled_from(flags))]
        if not draw(st.integers(0, 5)):
            args.insert(draw(st.integers(0, len(args))), draw(hostile))
        return [arg.replace("\x00", "") for arg in args]  # a real argv cannot carry NUL

    return build()


names = st.one_of(st.sampled_from(["disk", "app", "r2", "x-1"]), hostile)
numbers = st.one_of(numbers_as_text, st.sampled_from(["1", "4", "336", "337", "0"]))
# Text PostgreSQL can keep in a varchar(63): the CLI paths that store values unchecked are pinned below.
storable = st.one_of(st.text(st.characters(blacklist_characters="\x00"), max_size=63), shell_and_sql,
                     traversal.filter(lambda t: len(t) <= 63), cron_like.filter(lambda t: len(t) <= 63))


@CLI
@given(data=st.data())
def test_add_storage_with_fuzzed_arguments(world, data):
    tmp = str(world["tmp"])
    args = data.draw(st.one_of(
        near(["disk2", "--local", f"{tmp}/b", "--retention-days", "14"],
             ["r2", "--s3-endpoint", "https://r2.example.com", "--bucket", "my-backups", "--prefix", "prod/db",
              "--region", "auto", "--path-style", "--lifecycle-days", "30", "--sse", "AES256"]),
        command_line([names], {
            "--local": st.one_of(corrupted(tmp + "/backups"), traversal, hostile),
            "--s3-endpoint": st.one_of(st.sampled_from(["aws", "http://127.0.0.1:9", "https://r2.example.com"]),
                                       dsn_like, hostile),
            "--bucket": st.one_of(bucket_like, hostile), "--prefix": st.one_of(traversal, hostile),
            "--region": hostile, "--path-style": None, "--retention-days": numbers, "--lifecycle-days": numbers,
            "--sse": st.sampled_from(["AES256", "aws:kms", "none", ""]), "--checksum-when-required": None,
        }),
    ))
    assume(not_help(args))
    run_cli("add_storage", *args, "--no-test")  # never touch fuzzed directories or endpoints


@CLI
@given(suffix=st.one_of(control_chars, undecodable, st.text(max_size=300), shell_and_sql))
def test_add_storage_tests_a_fuzzed_local_directory_or_refuses_it(world, suffix):
    run_cli("add_storage", "disk2", "--local", f"{world['tmp']}/d/{suffix}")


@CLI
@given(data=st.data())
def test_add_database_with_fuzzed_arguments(world, data):
    dsn = data.draw(st.one_of(dsn_like, corrupted("postgresql://postgres:pw@127.0.0.1:5432/app?sslmode=disable"),
                              corrupted("host=127.0.0.1 port=5432 dbname=app user=postgres"), hostile))
    set_env("FUZZ_DSN", dsn)
    args = data.draw(st.one_of(
        near(["app2", "--dsn-env", "FUZZ_DSN", "--storage", "disk", "--offsite", "disk", "--timezone",
              "Europe/Berlin", "--globals"]),
        command_line([names], {
            "--dsn-env": st.one_of(st.just("FUZZ_DSN"), hostile), "--storage": names, "--offsite": names,
            "--timezone": st.one_of(timezone_like, hostile), "--globals": None,
        }),
    ))
    assume(not_help(args))
    run_cli("add_database", *args, "--no-test")  # never connect to fuzzed hosts


@CLI
@given(dbname=storable, user=storable, password=storable)
def test_add_database_connects_with_fuzzed_credentials_or_refuses(world, dbname, user, password):
    def quoted(value):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    set_env("FUZZ_DSN", f"host=127.0.0.1 port=5432 dbname={quoted(dbname)} user={quoted(user)} "
                        f"password={quoted(password)} connect_timeout=5")
    run_cli("add_database", "fuzzed", "--dsn-env", "FUZZ_DSN", "--storage", "disk")


@CLI
@given(data=st.data())
def test_backup_status_verify_and_drill_with_fuzzed_arguments(world, data):
    good, bad = world["good"], world["bad"]
    run_ids = st.one_of(st.sampled_from([good, bad]), numbers, hostile)
    command, args = data.draw(st.one_of(
        st.tuples(st.just("backup"), near(["app", "--inline", "--json"], ["app", "--json"], ["app"])),
        st.tuples(st.just("backup"), command_line([names], {"--inline": None, "--json": None})),
        st.tuples(st.just("status"), command_line([], {"--json": None})),
        st.tuples(st.just("verify"), near([good, "--inline", "--checksums-only", "--json"], [good, "--inline"],
                                          [bad, "--json"])),
        st.tuples(st.just("verify"), command_line([run_ids], {"--inline": None, "--checksums-only": None,
                                                              "--json": None})),
        st.tuples(st.just("drill"), near(["app", "--run", good, "--inline", "--json"], ["app", "--run", good],
                                         ["app", "--inline"])),
        st.tuples(st.just("drill"), command_line([names], {"--run": run_ids, "--inline": None, "--json": None})),
    ))
    assume(not_help(args) and never_waits(args))
    # The database's server database does not exist and its runs have no files:
    # inline jobs fail fast (exit 1) before any sandbox is made.
    run_cli(command, *args)


@pytest.mark.parametrize("command", ["backup app", "verify {good}", "drill app", "restore {good} --to-sandbox"])
def test_inline_and_wait_together_are_refused(world, command):
    args = command.format(**world).split()
    assert outcome(*args, "--inline", "--wait") == "refused"


@CLI
@given(data=st.data())
def test_restore_with_fuzzed_arguments(world, data):
    good = world["good"]
    dsn = data.draw(st.one_of(st.just("postgresql://postgres@127.0.0.1/postgres"),
                              corrupted("postgresql://postgres@127.0.0.1:5432/postgres"), dsn_like))
    set_env("FUZZ_DSN", dsn)
    args = data.draw(st.one_of(
        near([good, "--to-sandbox", "--hours", "2", "--table", "public.orders", "--inline", "--json"],
             [good, "--to-dsn-env", "FUZZ_DSN", "--new-database", "restored", "--confirm", "restored", "--schema",
              "public"],
             [good, "--to-dsn-env", "FUZZ_DSN", "--new-database", "restored", "--inline"]),
        command_line([st.one_of(st.sampled_from([good, world["bad"]]), numbers, storable)], {
            "--to-sandbox": None, "--to-dsn-env": st.one_of(st.just("FUZZ_DSN"), storable), "--hours": numbers,
            "--new-database": storable, "--confirm": storable, "--table": storable, "--schema": storable,
            "--inline": None, "--json": None,
        }),
    ))
    assume(not_help(args) and never_waits(args))
    # Inline restores of this run end at fetching its dump (it has none), before any sandbox or server is touched.
    run_cli("restore", *args)


@CLI
@given(data=st.data())
def test_add_channel_with_fuzzed_arguments(world, data):
    set_env("FUZZ_URL", data.draw(st.one_of(
        st.sampled_from(["json://127.0.0.1:9/hook", "tgram://123:abc/456", "slack://a/b/c", "mailto://u:p@h"]),
        corrupted("json://127.0.0.1:9/hook"), dsn_like, hostile)))
    args = data.draw(st.one_of(
        near(["ops", "--url-env", "FUZZ_URL", "--events", "backup_failed", "drill_failed"],
             ["ops", "--url-env", "FUZZ_URL"]),
        command_line([st.one_of(st.sampled_from(["ops", "pager"]), storable)], {
            "--url-env": st.one_of(st.just("FUZZ_URL"), hostile),
            "--events": st.one_of(st.sampled_from(NotificationChannel.Event.values), hostile),
        }),
    ))
    assume(not_help(args))
    run_cli("add_channel", *args)


# Crashes the fuzzing found, fixed and kept as regression tests.









UNDECODABLE = "caf\udce9"  # b"caf\xe9": Latin-1 bytes in a UTF-8 locale


@pytest.mark.parametrize("args", [
    ["backup", UNDECODABLE], ["drill", UNDECODABLE], ["add_storage", UNDECODABLE, "--local", "/srv/b", "--no-test"],
    ["add_database", UNDECODABLE, "--dsn-env", "FUZZ_DSN", "--storage", "disk", "--no-test"],
    ["add_database", "app2", "--dsn-env", "FUZZ_DSN", "--storage", UNDECODABLE, "--no-test"],
    ["add_channel", UNDECODABLE, "--url-env", "FUZZ_URL"],
], ids=["backup", "drill", "add_storage", "add_database", "add_database-storage", "add_channel"])
def test_undecodable_argv_is_refused_by_every_command(world, args):
    os.environ["FUZZ_DSN"] = "postgresql://postgres@127.0.0.1/app"
    os.environ["FUZZ_URL"] = "json://127.0.0.1:9/hook"
    assert outcome(*args) == "refused"


@pytest.mark.parametrize("option", ["--table", "--schema"])
def test_restore_refuses_an_undecodable_table_or_schema(world, option):
    assert outcome("restore", world["good"], "--to-sandbox", option, UNDECODABLE) == "refused"


def test_add_channel_refuses_an_undecodable_url(world):
    os.environ["FUZZ_URL"] = "json://127.0.0.1:9/" + UNDECODABLE
    assert outcome("add_channel", "ops", "--url-env", "FUZZ_URL") == "refused"


def test_add_channel_refuses_an_overlong_name(world):
    os.environ["FUZZ_URL"] = "json://127.0.0.1:9/hook"
    assert outcome("add_channel", "n" * 64, "--url-env", "FUZZ_URL") == "refused"


@pytest.mark.parametrize("dsn", [f"postgresql://postgres@127.0.0.1/{UNDECODABLE}", "postgresql://127.0.0.1/caf%e9"],
                         ids=["undecodable", "percent-encoded"])
def test_add_database_refuses_an_undecodable_dsn(world, dsn):
    os.environ["FUZZ_DSN"] = dsn
    assert outcome("add_database", "app2", "--dsn-env", "FUZZ_DSN", "--storage", "disk", "--no-test") == "refused"


@pytest.mark.parametrize("dsn", ["host=127.0.0.1 port=x", "host=a,b port=1,2", "postgresql://127.0.0.1/caf%e9"])
def test_restore_refuses_a_bad_target_dsn(world, dsn):
    os.environ["FUZZ_DSN"] = dsn
    assert outcome("restore", world["good"], "--to-dsn-env", "FUZZ_DSN", "--new-database", "restored") == "refused"


@pytest.mark.parametrize("option", ["--new-database", "--confirm"])
def test_restore_refuses_an_overlong_database_name(world, option):
    os.environ["FUZZ_DSN"] = "postgresql://postgres@127.0.0.1/postgres"
    values = {"--new-database": "restored", "--confirm": "restored", option: "d" * 64}
    args = [token for pair in values.items() for token in pair]
    assert outcome("restore", world["good"], "--to-dsn-env", "FUZZ_DSN", *args) == "refused"
