"""Hostile input for the fuzz tests: strategies and bounded hypothesis settings."""

from contextlib import contextmanager

from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Bounded so the suite stays part of the normal run. No example database:
# a failure prints its minimal example, and nothing is written into the repo.
FUZZ = settings(
    max_examples=100, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HUGE = 100_000

# Bytes that are not UTF-8 (Latin-1, a cut sequence, an encoded surrogate), as
# Python hands them over from argv and the environment: surrogateescape.
undecodable = st.builds(
    lambda head, bad, tail: (head + bad + tail).decode("utf-8", "surrogateescape"),
    st.binary(max_size=6), st.sampled_from([b"\xff", b"\xe9", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xfe\xff"]),
    st.binary(max_size=6),
)
control_chars = st.text(st.characters(max_codepoint=0x1F) | st.sampled_from("\x7f\x85\u2028\u2029\u200b\u202e\ufeff"),
                        min_size=1, max_size=8)
nul_bytes = st.sampled_from(["\x00", "a\x00b", "disk\x00", "/tmp/\x00/x"])
huge = st.builds(lambda chunk: (chunk * HUGE)[:HUGE], st.sampled_from(["x", "é", "../", "\x00", "%", "a-", "1", "€\n"]))
traversal = st.builds(
    lambda lead, parts: lead + "/".join(parts),
    st.sampled_from(["", "/", "\\", "~/", "C:\\"]),
    st.lists(st.sampled_from(["..", ".", "", "a", "b c", "..\\..", "%2e%2e", "\uff0e\uff0e", "\u2025", "é", "etc",
                              "passwd"]), min_size=1, max_size=6),
)
shell_and_sql = st.sampled_from([
    "$(touch /tmp/pwned)", "`touch /tmp/pwned`", "; touch /tmp/pwned", "| touch /tmp/pwned", "&& id",
    'x"; DROP TABLE y; --', "x'; DROP TABLE y; --", "' OR 1=1 --", "%s%s%n", "{0}{__class__}", "-oProxyCommand=id",
    "--help", "-h", "\\\\server\\share",
])
dsn_like = st.one_of(
    st.sampled_from([
        "", "postgresql://", "postgres://u:p@h:5432/d", "postgresql://[::1", "postgresql://h:99999999999/d",
        "postgresql://h:-1/d", "postgresql://%zz@h/d", "postgresql://h/%ff", "host='x", "a=b=c", "host=a port=b",
        "host=a,b port=1,2", "dbname=a\\", "service=nosuch", "postgresql://u@/d?host=/tmp&sslmode=bogus",
        "host=127.0.0.1 options='-c statement_timeout=1'", "postgresql:///d?passfile=/etc/shadow",
    ]),
    st.builds(
        "postgresql://{}:{}@{}:{}/{}?sslmode={}".format,
        st.text(max_size=8), st.text(max_size=8), st.text(max_size=12), st.text(max_size=6), st.text(max_size=10),
        st.text(max_size=6),
    ),
    st.builds("host={} port={} dbname={} user={}".format, *[st.text(max_size=10)] * 4),
)
cron_piece = st.sampled_from([
    "*", "0", "5", "59", "60", "99999999999", "-1", "--1", "*/0", "*/-1", "*/15", "1-5", "5-1", "1-", "-", ",", "1,,2",
    "1,2", "sun", "sun-mon", "mon-fri", "jan", "dec", "L", "W", "?", "#", "1#2", "\u0663", "7", "13", "31", "29", "2",
    "0-59/99999999", "*/9999999999999999999999", "1/0", "a", "",
])
cron_like = st.one_of(
    st.lists(cron_piece, min_size=0, max_size=7).map(" ".join),
    st.lists(cron_piece | st.text(max_size=4), min_size=5, max_size=5).map(" ".join),
    st.builds("0 0 {} {} *".format, st.sampled_from(["29", "30", "31", "1-7", "31,30"]),
              st.sampled_from(["2", "4", "2,4", "*", "feb", "2-2"])),
)
bucket_like = st.one_of(
    st.from_regex(r"[a-z0-9.\-_A-Z]{0,70}", fullmatch=True),
    st.sampled_from(["a..b", "192.168.0.1", "-bucket", "bucket-", "ab", "a" * 64, "xn--bucket", "b/../c", "Bucket"]),
)
numbers_as_text = st.one_of(
    st.integers().map(str),
    st.sampled_from(["", "0", "-1", "99999999999999999999", "1e9", "5.5", "NaN", "inf", "0x10", " 5 ", "\u0661\u0662",
                     "9" * 5000, "2147483648", "-2147483649", "9223372036854775808"]),
)
timezone_like = st.one_of(
    st.sampled_from([
        "UTC", "Europe/Berlin", "America", "Europe", "Etc", "posix", "right", "posix/Europe/Berlin", "right/UTC",
        "localtime", "posixrules", "Factory", "../etc/passwd", "/etc/localtime", "Europe//Berlin", "UTC/", ".", "..",
        "zone.tab", "tzdata.zi", "__init__.py", "__pycache__", "EST5EDT", "Etc/GMT+12", "a" * 300,
    ]),
    st.text(max_size=20),
)

hostile = st.one_of(
    st.text(max_size=40), undecodable, control_chars, nul_bytes, huge, traversal, shell_and_sql, dsn_like, cron_like,
    bucket_like, numbers_as_text,
)


splinter = st.one_of(undecodable, control_chars, nul_bytes, shell_and_sql,
                    st.sampled_from(["..", "/", "\\", "/../", "\n", " ", "%00", "\u202e", "é", "'", '"']))


def corrupted(value) -> st.SearchStrategy:
    """VALUE with something hostile spliced in: close enough to valid to reach the code behind the field."""
    if not isinstance(value, str):
        return hostile
    return st.builds(lambda at, bad: value[:at] + bad + value[at:], st.integers(0, len(value)), splinter)


def mutations(valid: dict, bad: dict) -> st.SearchStrategy[dict]:
    """VALID form data with one to three fields replaced: by BAD[field], a
    corrupted valid value, or anything hostile.

    Few fields at a time, so that the other fields pass and each bad value
    reaches the code behind it (a custom clean, the save).
    """

    @st.composite
    def build(draw):
        data = dict(valid)
        for name in draw(st.lists(st.sampled_from(sorted(valid)), min_size=1, max_size=3, unique=True)):
            data[name] = draw(st.one_of(bad.get(name, hostile), corrupted(valid[name]), hostile))
        return data

    return build()


@contextmanager
def rolled_back():
    """Each example in its own savepoint, so a database error cannot poison the next one."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)
