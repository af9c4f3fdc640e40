"""The library stays a library: no CLI or cluster code inside pipeline/."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_pipeline_imports_neither_click_nor_dask_distributed():
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top not in {"click", "distributed", "dask_cluster", "cli"}, f"{path.name} imports {name}"


def test_only_dask_cluster_talks_to_dask_distributed():
    for path in sorted(ROOT.glob("*.py")) + sorted((ROOT / "pipeline").rglob("*.py")):
        assert not any(n.split(".")[0] == "distributed" for n in imported_modules(path)), path
