"""docs/cli.md's exit-code table says what the code does: every error class's code is in
the row of its exit code, and the table names no code that does not exist."""

from __future__ import annotations

import inspect
import re

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
