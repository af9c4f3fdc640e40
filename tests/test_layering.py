"""The library stays layered: each package of pipeline/ imports only the rooms the table
allows (the same table is in docs/decisions.md), and nothing in it is CLI, cluster or
test-support code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipeline"

BASE = {"errors", "layout"}
# Who may import whom inside pipeline/ ("delta.route" is one module of delta).
ALLOWED = {
    "errors": set(),
    "layout": {"errors"},
    "core": {"errors"},
    "formats": BASE | {"core"},
    "storage": BASE | {"core"},
    "build": BASE | {"core", "formats", "storage"},
    "delta": BASE | {"core", "formats", "storage"},
    "client": BASE | {"core", "formats", "storage", "trust", "delta.route"},
    "publish": BASE | {"core", "formats", "storage", "trust"},
    "trust": BASE | {"core", "formats", "storage"},
    "stats": BASE | {"core", "formats", "storage"},
    "service": BASE | {"core", "formats", "storage", "trust", "delta.route"},
}
NEVER_IN_PIPELINE = {"click", "distributed", "depot_app.dask_cluster", "depot_app.cli", "depot_app.commands",
                     "depot_testing"}
# cli.py, commands/, dask_cluster/ and manifests/ as installed: modules of depot_app.
APP = {"cli", "commands", "dask_cluster", "manifests"}


def imports(path: Path, source: str | None = None) -> set[str]:
    """Absolute names of everything ``path`` imports (or ``source``, given as its text),
    relative imports resolved."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    if path.name == "__init__.py":
        package = path.relative_to(ROOT).parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)  # "from . import x" imports a module
    return names


def room(name: str) -> str | None:
    """The room of pipeline a module name is in: 'core', 'delta.route', 'errors', ..."""
    parts = name.split(".")
    if parts[0] != "pipeline" or len(parts) < 2:
        return None
    if parts[1] == "delta" and len(parts) > 2 and parts[2] == "route":
        return "delta.route"
    return parts[1]


MODULES = sorted(PIPELINE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PIPELINE)) for p in MODULES])
def test_each_package_imports_only_what_the_table_allows(path):
    check_rooms(path)


def check_rooms(path: Path, source: str | None = None) -> None:
    """Fail if the module at ``path`` (or ``source`` in its place) imports a room its own may not."""
    own = path.relative_to(PIPELINE).parts[0].removesuffix(".py")
    if own == "__init__":
        return
    allowed = ALLOWED[own] | {own}
    for name in imports(path, source):
        r = room(name)
        if r is None or r in allowed or (r == "delta.route" and "delta" in allowed):
            continue
        if r not in ALLOWED and r != "delta.route":
            continue  # a name imported from a module (``from ..x import y``), not a room
        assert False, f"pipeline/{path.relative_to(PIPELINE)} imports {name}: {own} may import only {sorted(allowed)}"


def test_pipeline_imports_neither_click_nor_the_cluster_nor_the_test_support():
    for path in MODULES:
        for name in imports(path):
            assert not any(name == n or name.startswith(n + ".") for n in NEVER_IN_PIPELINE), \
                f"{path.relative_to(ROOT)} imports {name}"


def absolute_imports(path: Path) -> set[str]:
    """The names ``path`` imports absolutely (``import x.y``, ``from x.y import z``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module or "")
    return names


def test_the_app_is_imported_by_its_installed_names():
    """Installed, cli.py, commands/, dask_cluster/ and manifests/ are modules of depot_app
    (no top-level name of their own to collide with another distribution's): code that
    imported them by their names in the repository would run from the repository only,
    and with two copies of a module beside the installed one."""
    files = sorted(ROOT.glob("*.py")) + [p for d in ("pipeline", "commands", "dask_cluster", "manifests",
                                                     "depot_testing", "scripts", "tests")
                                         for p in sorted((ROOT / d).rglob("*.py"))]
    for path in files:
        for name in absolute_imports(path):
            assert name.split(".")[0] not in APP, f"{path.relative_to(ROOT)} imports {name}: use depot_app.{name}"


def test_every_package_is_installed():
    """pyproject.toml lists the packages it installs: every package of the library and the
    app, under their installed names, and the test support not."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    library = {".".join(p.relative_to(ROOT).parts[:-1]) for p in PIPELINE.rglob("__init__.py")}
    app = {"depot_app"} | {f"depot_app.{name}" for name in APP - {"cli"}}
    assert set(setuptools["packages"]) == library | app
    assert setuptools["package-dir"] == {"depot_app": ".", **{f"depot_app.{n}": n for n in APP - {"cli"}}}


def test_the_test_support_is_not_installed():
    """depot_testing/ needs pytest, moto and apt-get: pyproject.toml installs no package of
    it, so it ships neither in a wheel nor with an editable install."""
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert (ROOT / "depot_testing" / "__init__.py").exists()
    assert not any(name.split(".")[0] == "depot_testing" for name in packages)
    assert not (PIPELINE / "testing").exists()


def test_only_dask_cluster_talks_to_dask_distributed():
    for path in sorted(ROOT.glob("*.py")) + MODULES:
        assert not any(n.split(".")[0] == "distributed" for n in imports(path)), path


def test_the_commands_never_import_cli():
    """cli.py imports the command modules; were they to import it back, each would need
    cli.py loaded first. What they share is in commands/shared.py."""
    for path in sorted((ROOT / "commands").glob("*.py")):
        assert "depot_app.cli" not in imports(path), f"{path.relative_to(ROOT)} imports cli"


def test_the_table_catches_a_forbidden_import():
    """The check itself: a client module importing a patch engine is refused."""
    fetch = PIPELINE / "client" / "fetch.py"
    check_rooms(fetch)  # as it is: allowed
    with pytest.raises(AssertionError, match="client may import only"):
        check_rooms(fetch, fetch.read_text() + "\nfrom ..delta import engines\n")


def test_importing_a_module_loads_only_what_it_needs():
    """``import pipeline`` runs nothing; a client loads no patch-making engine, no cluster
    code, and no python-tuf (a quarter of a second) until it needs them."""
    import subprocess
    import sys

    probe = ("import sys, pipeline.layout; a = set(sys.modules); import pipeline.client.update, pipeline.client.install; "
             "b = set(sys.modules); print(sorted(m for m in a if m.startswith('pipeline.'))); "
             "print(sorted(m for m in b if m.split('.')[0] in {'hdiffpatch', 'bsdiff4', 'pyzstd', 'distributed', 'click', 'tuf'} "
             "or m.startswith(('pipeline.build', 'pipeline.delta.engines', 'pipeline.delta.diff'))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    layout_only, client_extra = out.splitlines()
    assert layout_only == "['pipeline.errors', 'pipeline.layout']"
    assert client_extra == "[]"


def test_each_package_says_what_it_may_import():
    """Each package's opening docstring ends with "May import: ...", naming the rooms the
    table allows it, so a reader sees the rule where the code is."""
    packages = sorted(p for p in PIPELINE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert {p.name for p in packages} == set(ALLOWED) - BASE
    for package in packages:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        said = doc.rpartition("May import:")[2].strip().removesuffix(".")
        assert "May import:" in doc and set(re.split(r"[,\s]+", said)) == ALLOWED[package.name], package.name
