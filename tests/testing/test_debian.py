"""The one apt-get of the tests and benchmarks, run against an apt-get of the test's own
(a script on PATH that writes down what it was asked): the missing packages in one
install, an update and a second try after a failure, and the error that names them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from depot_testing.debian import ensure_binaries, ensure_binary

# Fails the first install; an update, then the install puts each package's tool on PATH.
FAKE_APT = """#!/bin/sh
echo "$*" >> "{log}"
case "$1" in
  update) touch "{bin}/.updated" ;;
  install) [ -e "{bin}/.updated" ] || exit 100
           [ -z "{broken}" ] || {{ echo "E: Unable to locate package $4" >&2; exit 100; }}
           for p in "$@"; do [ "${{p#-}}" = "$p" ] && [ "$p" != install ] && printf '#!/bin/sh\\n' > "{bin}/$p-tool" \\
             && chmod +x "{bin}/$p-tool"; done ;;
esac
"""


def fake_apt(tmp_path: Path, monkeypatch, broken: bool = False) -> Path:
    bin_dir, log = tmp_path / "bin", tmp_path / "apt.log"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(FAKE_APT.format(log=log, bin=bin_dir, broken="yes" if broken else ""))
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/bin:/usr/bin")
    return log


def test_missing_tools_are_installed_in_one_apt_get_after_an_update(tmp_path, monkeypatch):
    log = fake_apt(tmp_path, monkeypatch)
    found = ensure_binaries({"depot-a-tool": "depot-a", "depot-b-tool": "depot-b", sys.executable: "python3"})
    assert found == {"depot-a-tool": str(tmp_path / "bin" / "depot-a-tool"),
                     "depot-b-tool": str(tmp_path / "bin" / "depot-b-tool"), sys.executable: sys.executable}
    install = "install -y --no-install-recommends depot-a depot-b"
    assert log.read_text().splitlines() == [install, "update", install]
    assert ensure_binary("depot-a-tool", "depot-a") == found["depot-a-tool"]  # there now: apt-get not run again
    assert len(log.read_text().splitlines()) == 3


def test_a_package_that_does_not_install_is_named(tmp_path, monkeypatch):
    fake_apt(tmp_path, monkeypatch, broken=True)
    with pytest.raises(RuntimeError) as e:
        ensure_binary("depot-c-tool", "depot-c")
    assert str(e.value) == ("apt-get install depot-c failed (exit 100): "
                            "E: Unable to locate package depot-c")
    assert not os.path.exists(tmp_path / "bin" / "depot-c-tool")
