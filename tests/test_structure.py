"""The repository's structure rules that neither ruff nor import-linter checks.

- every folder with an ``__init__.py`` under a package root is listed in pyproject's
  ``packages`` (an editable install finds a forgotten subpackage; a wheel or a Docker image
  silently leaves it out);
- each folder that installs as ``vigil.<folder>`` is linked as ``vigil/<folder>``, so that
  ``lint-imports`` at the repository root reads the installed package tree;
- no source file outside ``tests/`` is over 650 lines (a file that long holds more than one
  concern: split it where the concerns part).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 650


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_package_folder_is_listed_in_pyproject():
    cfg = _setuptools()
    listed = set(cfg["packages"])
    found = set()
    for name, folder in cfg["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join((name, *rel.parts)))
    assert sorted(found - listed) == [], "package folders missing from pyproject's [tool.setuptools] packages"
    assert sorted(listed - found) == [], "pyproject lists packages that have no folder"


def test_each_package_folder_is_linked_into_the_vigil_tree():
    """`lint-imports` reads the package tree at the repository root: each top-level folder that
    installs as ``vigil.<folder>`` is linked there as ``vigil/<folder>``."""
    folders = {name.removeprefix("vigil."): folder for name, folder in _setuptools()["package-dir"].items()}
    folders.pop("vigil")
    assert folders and all(name == folder for name, folder in folders.items())
    links = {p.name: os.readlink(p) for p in (ROOT / "vigil").iterdir() if p.is_symlink()}
    assert links == {name: f"../{name}" for name in folders}


def test_no_source_file_is_over_the_line_limit():
    cfg = _setuptools()
    too_long = {}
    for folder in cfg["package-dir"].values():
        for path in (ROOT / folder).rglob("*.py"):
            n = len(path.read_text(encoding="utf-8").splitlines())
            if n > MAX_LINES:
                too_long[str(path.relative_to(ROOT))] = n
    assert too_long == {}, f"source files over {MAX_LINES} lines"


def test_browser_waits_pass_a_function_not_an_expression():
    """Playwright's wait_for_function re-runs a non-function expression with eval() on each poll,
    outside the DevTools call that is exempt from the page's CSP: the console's
    ``script-src 'self'`` refuses it, so such a wait passes only when the page is already ready
    (a test that fails under load). A function source is evaluated once, inside that call."""
    import ast
    import re

    tests = Path(__file__).parent
    function_source = re.compile(r"\s*(\([^)]*\)|[A-Za-z_$][\w$]*)\s*=>|\s*function\b")
    bad = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "wait_for_function"):
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.JoinedStr):
                first = first.values[0] if first.values else None
            text = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
            if text is None or not function_source.match(text):
                bad.append(f"{path.relative_to(tests)}:{node.lineno}")
    assert bad == []
