"""Every environment variable the code reads appears in the README's configuration table."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ("controlpanel", "backups", "drills")
READERS = re.compile(r"""(?:env_(?:str|bool|int|list|choice|secret)|os\.environ\.get|os\.getenv)"""
                     r"""\(\s*["']([A-Z][A-Z0-9_]+)["']""")
INDIRECT = re.compile(r"""os\.environ\.get\(\s*o\[|os\.environ\.get\(\s*\w+_env""")


def variables_in_code() -> set[str]:
    found = set()
    for directory in CODE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            text = path.read_text()
            for name in READERS.findall(text):
                found.add(name)
                if re.search(rf"""env_secret\(\s*["']{name}["']""", text):
                    found.add(f"{name}_FILE")
    return found


def variables_in_readme() -> set[str]:
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", (ROOT / "README.md").read_text(), re.MULTILINE))


def test_every_variable_the_code_reads_is_documented():
    missing = variables_in_code() - variables_in_readme()
    assert not missing, f"add these to the README's configuration table: {sorted(missing)}"


def test_the_table_lists_no_variable_the_code_does_not_read():
    extra = variables_in_readme() - variables_in_code() - {"DJANGO_SETTINGS_MODULE", "TEST_DATABASE_URL"}
    assert not extra, f"the README documents variables nothing reads: {sorted(extra)}"


def project_commands() -> set[str]:
    return {path.stem for directory in CODE_DIRS for path in (ROOT / directory / "management" / "commands").glob("*.py")
            if not path.stem.startswith("_")}


def commands_in_table() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| command | flags |"):]
    table = table[: table.index("\n\n")]
    return set(re.findall(r"^\| `([a-z_]+)[ `]", table, re.MULTILINE))


def test_the_command_table_lists_every_command_and_only_those():
    assert commands_in_table() == project_commands(), (
        f"missing from the README: {sorted(project_commands() - commands_in_table())}; "
        f"named but not a command: {sorted(commands_in_table() - project_commands())}")


def test_every_manage_py_command_the_docs_name_exists():
    from django.core.management import get_commands

    known = set(get_commands())
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        named = set(re.findall(r"manage\.py ([a-z][a-z_]+)", doc.read_text()))
        assert named <= known, f"{doc.name} names commands that do not exist: {sorted(named - known)}"
