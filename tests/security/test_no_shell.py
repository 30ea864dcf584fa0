"""No code of the panel hands a string to a shell: every command is an argv list."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for app in ("controlpanel", "backups", "drills") for p in (ROOT / app).rglob("*.py"))
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput")}


def shell_uses(text: str) -> list[str]:
    """What in TEXT runs a shell: as written (any spacing), imported, or shell= not a literal False."""
    found = [m.group(0) for m in re.finditer(r"shell\s*=\s*(True|1)\b|\bos\s*\.\s*(system|popen)\b", text)]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "subprocess"):
            found += [f"from {node.module} import {a.name}" for a in node.names if (node.module, a.name) in SHELL_CALLS]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in SHELL_CALLS:
                found.append(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.keyword) and node.arg == "shell":
            if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                found.append(f"shell={ast.unparse(node.value)}")
    return found


def test_the_check_finds_each_way_to_a_shell():
    for text in ['subprocess.run("ls", shell=True)', "subprocess.run(argv, shell = use_shell)", "os.system('x')",
                 "os .popen('x')", "from os import system", "from subprocess import getoutput",
                 "subprocess.getstatusoutput('x')"]:
        assert shell_uses(text), text
    assert shell_uses("subprocess.run(['pg_dump', '--file=x'], shell=False)") == []


def test_the_apps_have_sources_to_check():
    assert len(SOURCES) > 20 and ROOT / "backups" / "pgtools.py" in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_shell_in_source(path):
    assert shell_uses(path.read_text()) == []
