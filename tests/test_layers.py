"""Layers point one way: controlpanel's core <- backups <- drills, the site
layer on top. The contract (pyproject.toml, import-linter) holds on the tree,
and breaks when a lower layer reaches up."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(),
                                reason="import-linter is not installed (make lint installs it)")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


def test_the_tree_keeps_its_layers():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, line", [
    ("controlpanel/jobs.py", "import backups.models"),
    ("controlpanel/notify.py", "from drills.health import fleet_health"),
    ("backups/tasks.py", "import drills.services"),
    ("drills/fetch.py", "from controlpanel.site import overview"),
])
def test_an_import_that_reaches_up_breaks_the_contract(tmp_path, module, line):
    for package in ("controlpanel", "backups", "drills"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout[-2000:]
