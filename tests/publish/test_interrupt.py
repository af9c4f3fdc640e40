"""Ctrl-C stops a publish: the uploads stop, nothing goes live before the commit, one line
and exit 130; running it again finishes the job."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from helpers import DEPOT, ROOT, assert_installed, dangling, root_of, signed_player
from pipeline import layout
from pipeline.client.install import install
from pipeline.storage import open_store
from depot_testing.fixtures import PRODUCT, signed_repository


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    return signed_repository(tmp_path_factory.mktemp("signed"), versions=("1.0.0", "1.1.0"))


def wait_for(condition, proc) -> None:
    """Until ``condition()``; fails if the process ends first."""
    while not condition():
        assert proc.poll() is None, "the publish ended before it could be interrupted"
        time.sleep(0.05)


@pytest.mark.parametrize("command", [
    ["publish", "-p", PRODUCT, "-v", "1.0.0", "-v", "1.1.0"],
    ["promote", "-p", PRODUCT, "-v", "1.1.0", "-c", "stable"],
])
def test_ctrl_c_stops_a_publish_before_anything_goes_live_and_a_rerun_finishes(signed, tmp_path, build_dirs, command):
    shutil.copytree(signed, tmp_path / "release")
    (tmp_path / "release" / "keys" / "root.key").unlink()  # kept offline: only the online keys sign here
    repo, origin = tmp_path / "release" / "repo", tmp_path / "origin"
    args = DEPOT + ["--repo", str(repo), *command, "--origin", str(origin)]
    env = {**os.environ, "DEPOT_KEYS": str(tmp_path / "release" / "keys")}
    # A slow link (64 KiB/s, two uploads in flight): the publish is still sending data
    # when the first chunk lands.
    proc = subprocess.Popen(args + ["--jobs", "2", "--max-rate", "64KiB"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (origin / "chunks").is_dir() and any(p.is_file() for p in (origin / "chunks").rglob("*")), proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.splitlines() == ["depot: error: interrupted [INTERRUPTED]"]
    assert not (origin / layout.metadata_key("timestamp")).exists()  # nothing went live
    assert dangling(open_store(str(origin))) == []

    again = subprocess.run(DEPOT + ["--repo", str(repo), "publish", "-p", PRODUCT, "-v", "1.1.0", "--origin",
                                    str(origin)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert (origin / layout.metadata_key("timestamp")).read_bytes() == \
        (repo / layout.metadata_key("timestamp")).read_bytes()
    client = signed_player(origin, root_of(tmp_path / "release"), tmp_path / "data")
    install(client, PRODUCT, "1.1.0", tmp_path / "game")
    assert_installed(tmp_path / "game", build_dirs["1.1.0"])


def test_ctrl_c_stops_a_publish_waiting_on_a_low_max_rate(signed, tmp_path):
    """Three origins at 16 KiB/s together: 8 MB to send, and as soon as the first chunk
    lands, 48 uploads owe the limit minutes. Ctrl-C still ends the publish at once, not
    once that debt is paid."""
    shutil.copytree(signed, tmp_path / "release")
    (tmp_path / "release" / "keys" / "root.key").unlink()
    origins = [tmp_path / name for name in ("ma", "mb", "mc")]
    args = DEPOT + ["--repo", str(tmp_path / "release" / "repo"), "publish", "-p", PRODUCT, "-v", "1.0.0",
                    "-v", "1.1.0", "--max-rate", "16KiB"]
    for origin in origins:
        args += ["--origin", str(origin)]
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "DEPOT_KEYS": str(tmp_path / "release" / "keys")},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(p.is_file() for o in origins for p in (o / "chunks").rglob("*")), proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)  # far less than the debt to the limit
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.splitlines() == ["depot: error: interrupted [INTERRUPTED]"]
    for origin in origins:
        assert not (origin / layout.metadata_key("timestamp")).exists()
        assert dangling(open_store(str(origin))) == []
