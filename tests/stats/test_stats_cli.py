"""stats through the command line, where a user gets it wrong: a query before any export,
and a report that cannot be written."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import pytest

from helpers import DEPOT, unavailable
from depot_testing.fixtures import PRODUCT, chunk_fixture_versions


def depot(*args) -> subprocess.CompletedProcess:
    return subprocess.run(DEPOT + ["--json", *map(str, args)], capture_output=True, text=True)


def test_a_query_before_any_export_says_there_are_no_stats_yet(tmp_path):
    repo = tmp_path / "repo"
    chunk_fixture_versions(repo, versions=("1.0.0",))
    sql = "SELECT product, version FROM versions"
    p = depot("--repo", repo, "stats", "query", sql)
    assert p.returncode == 3, p.stderr
    assert json.loads(p.stdout) == {"error": "NOT_FOUND",
                                    "message": f"no stats at {repo}: run `depot stats export` first"}
    assert p.stderr == f"depot: error: no stats at {repo}: run `depot stats export` first [NOT_FOUND]\n"
    assert not (repo / "stats").exists()
    # a query that cannot run is refused as such, export or not
    p = depot("--repo", repo, "stats", "query", "SELECT nosuch FROM versions")
    assert (p.returncode, json.loads(p.stdout)["error"]) == (2, "INVALID_ARGUMENT")

    assert depot("--repo", repo, "stats", "export").returncode == 0
    p = depot("--repo", repo, "stats", "query", sql)
    assert (p.returncode, json.loads(p.stdout)) == (0, [{"product": PRODUCT, "version": "1.0.0"}])


@contextlib.contextmanager
def immutable(folder: Path):
    """``folder`` made immutable (chattr +i): nothing can be created in it, even by root,
    for whom a read-only mode does not stop a write."""
    try:
        subprocess.run(["chattr", "+i", str(folder)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        unavailable(f"chattr +i does not work on this file system: {exc}")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_report_that_cannot_be_written_is_a_clean_error_and_leaves_nothing(tmp_path):
    repo = tmp_path / "repo"
    (repo / "stats").mkdir(parents=True)
    out = tmp_path / "locked" / "report.html"
    out.parent.mkdir()
    with immutable(out.parent):
        p = depot("--repo", repo, "stats", "report", "--out", out)
        assert list(out.parent.iterdir()) == []  # not even a temporary file
    assert p.returncode == 9, p.stderr
    message = f"{out}: cannot write the report (Operation not permitted)"
    assert json.loads(p.stdout) == {"error": "STORE_UNAVAILABLE", "message": message}
    assert p.stderr == f"depot: error: {message} [STORE_UNAVAILABLE]\n"


@pytest.mark.parametrize("below", ["report.html", "reports/report.html"])
def test_a_report_where_a_file_stands_for_its_directory_is_a_clean_error(tmp_path, below):
    (tmp_path / "a-file").write_text("not a directory")
    out = tmp_path / "a-file" / below
    p = depot("--repo", tmp_path / "repo", "stats", "report", "--out", out)
    assert p.returncode == 9, p.stderr
    assert json.loads(p.stdout) == {"error": "STORE_UNAVAILABLE",
                                    "message": f"{out}: cannot write the report ({tmp_path / 'a-file'} is not a directory)"}
    assert (tmp_path / "a-file").read_text() == "not a directory"
