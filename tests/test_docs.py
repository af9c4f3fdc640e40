"""What the documents say stays true. docs/cli.md's exit-code table says what the code does:
every error class's code is in the row of its exit code, and the table names no code that
does not exist. docs/guarantees.md names, for each promise, tests that exist."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from helpers import ROOT
from pipeline import errors

NOT_CLASSES = {"USAGE", "INTERRUPTED"}  # raised by the command line itself, not the library


def documented() -> dict[str, int]:
    text = (ROOT / "docs" / "cli.md").read_text()
    table = text[text.index("## Exit codes"):]
    out = {}
    for line in table.splitlines():
        m = re.match(r"\| (\d+) \| ([^|]*) \|", line)
        if m:
            for code in re.findall(r"`([A-Z_]+)`", m.group(2)):
                out[code] = int(m.group(1))
    return out


def test_every_error_code_is_documented_with_its_exit_code():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.DepotError)]
    table = documented()
    for c in classes:
        assert table.get(c.code) == c.exit_code, f"{c.__name__}: {c.code} exits {c.exit_code}; docs/cli.md says {table.get(c.code)}"
    assert set(table) - {c.code for c in classes} == NOT_CLASSES


# -- docs/guarantees.md: each promise and the tests that guard it ------------------------------

GUARANTEES = ROOT / "docs" / "guarantees.md"
NOT_GUARDED = "## Not guarded yet"
TEST_REF = re.compile(r"\b(tests/[\w./-]+?\.py)::(\w+(?:::\w+)?)")


def _module_path(module: str, importer: Path) -> Path | None:
    """The file of an absolute module name, as the tests import it (from the repository or
    from tests/)."""
    rel = Path(*module.split("."))
    for base in (ROOT, ROOT / "tests", importer.parent):
        for path in (base / rel.with_suffix(".py"), base / rel / "__init__.py"):
            if path.is_file():
                return path
    return None


def _defines(path: Path, names: list[str], seen: frozenset = frozenset()) -> bool:
    """Whether ``path`` defines ``names``: a function (module-level, or a method of a class),
    or ``[Class, method]`` with the method on the class or one of its base classes, followed
    through ``from module import Base`` to other files of the repository."""
    tree = ast.parse(path.read_text(), str(path))
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    if len(names) == 1:
        bodies = [tree.body] + [c.body for c in tree.body if isinstance(c, ast.ClassDef)]
        return any(isinstance(n, functions) and n.name == names[0] for body in bodies for n in body)
    cls_name, method = names
    if (path, cls_name) in seen:
        return False
    seen = seen | {(path, cls_name)}
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name), None)
    if cls is None:
        return False
    if any(isinstance(n, functions) and n.name == method for n in cls.body):
        return True
    imported = {a.asname or a.name: (node.module, a.name) for node in tree.body if isinstance(node, ast.ImportFrom)
                and node.level == 0 and node.module for a in node.names}
    for base in cls.bases:
        if not isinstance(base, ast.Name):
            continue
        if base.id in imported:
            module, name = imported[base.id]
            where = _module_path(module, path)
            if where is not None and _defines(where, [name, method], seen):
                return True
        elif _defines(path, [base.id, method], seen):
            return True
    return False


def _table_rows(text: str) -> list[str]:
    """The body rows of every markdown table in ``text`` (not headers or separators)."""
    rows, previous = [], ""
    for line in text.splitlines():
        if line.startswith("|") and previous.startswith("|") and not re.fullmatch(r"\|[-:| ]+\|", line):
            rows.append(line)  # a table's first line is its header, the second its separator
        previous = line
    return rows


def test_every_test_named_in_guarantees_exists():
    text = GUARANTEES.read_text()
    refs = TEST_REF.findall(text)
    assert refs, "docs/guarantees.md names no test"
    for file, name in refs:
        path = ROOT / file
        assert path.is_file(), f"docs/guarantees.md names {file}::{name}, but there is no {file}"
        *cls, function = name.split("::")
        assert function.startswith("test") and all(c.startswith("Test") for c in cls), \
            f"docs/guarantees.md names {file}::{name}, which pytest does not collect as a test"
        assert _defines(path, name.split("::")), \
            f"docs/guarantees.md names {file}::{name}, but {file} defines no test {name}"
    guarded = text.split(NOT_GUARDED)[0]
    rows = _table_rows(guarded)
    assert rows, "docs/guarantees.md has no table rows"
    for row in rows:
        assert TEST_REF.search(row), f"docs/guarantees.md: a row outside '{NOT_GUARDED}' names no test: {row}"
