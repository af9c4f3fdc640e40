"""Keys at rest and the root of trust's first writing: key files and directories private to
their owner, passphrase-encrypted keys, root keys never taken from --keys, and a trust
init that either signs the repository or leaves it as it was."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from helpers import DEPOT, tree_snapshot, unavailable
from pipeline import layout
from pipeline.errors import InvalidArgument, SigningKeyMissing, StoreUnavailable, VersionConflict
from pipeline.formats.trust_settings import Lifetimes
from pipeline.storage import open_store
from depot_testing.fixtures import PRODUCT, chunk_fixture_versions, fixture_tar
from pipeline.trust import is_signed, keys, repository


def depot(tmp: Path, *args, check: int | None = 0, env: dict | None = None, umask: int | None = None):
    environ = {**os.environ, "DEPOT_DATA_DIR": str(tmp / "player-data"), **(env or {})}
    environ.pop("DEPOT_KEYS", None)
    if not (env and "DEPOT_KEY_PASSPHRASE" in env):
        environ.pop("DEPOT_KEY_PASSPHRASE", None)
    p = subprocess.run(DEPOT + ["--repo", str(tmp / "repo"), *map(str, args)], capture_output=True, text=True,
                       cwd=tmp, env=environ, stdin=subprocess.DEVNULL,
                       preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
    if check is not None:
        assert p.returncode == check, p.stderr
    return p


def error(p: subprocess.CompletedProcess) -> tuple[str, str]:
    """The one error line: (code, message)."""
    lines = [line for line in p.stderr.splitlines() if line.startswith("depot: error: ")]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    message, _, code = lines[0].removeprefix("depot: error: ").rpartition(" [")
    return code.rstrip("]"), message


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A chunked, unsigned repository, online keys in ``keys/`` and the root key apart in
    ``offline/``."""
    base = tmp_path_factory.mktemp("built")
    chunk_fixture_versions(base / "repo", versions=["1.0.0"])
    keys.generate(base / "keys", ["targets", "snapshot", "timestamp", PRODUCT])
    keys.generate(base / "offline", ["root", "root-2"])
    return base


@pytest.fixture
def repo(built, tmp_path) -> Path:
    shutil.copytree(built, tmp_path, dirs_exist_ok=True)
    return tmp_path


def init_args(base: Path, root: Path | None = None, *more) -> list:
    return ["trust", "init", "--root-key", root or base / "offline" / "root.key",
            "--targets-key", base / "keys" / "targets.key", "--snapshot-key", base / "keys" / "snapshot.key",
            "--timestamp-key", base / "keys" / "timestamp.key", *more]


def listing(base: Path) -> dict:
    return {"store": sorted(open_store(str(base / "repo")).list()), "files": tree_snapshot(base / "repo")}


# -- trust init: all or nothing ---------------------------------------------------------------


@pytest.mark.parametrize("more, code, names", [
    (["--expires", "timestamp=0s"], "INVALID_ARGUMENT", "--expires 'timestamp=0s'"),
    (["--expires", "timestamp=99999999d"], "INVALID_ARGUMENT", "--expires 'timestamp=99999999d'"),
    (["--expires", "snapshot=36501d"], "INVALID_ARGUMENT", "--expires 'snapshot=36501d'"),
    (["--threshold", "2"], "INVALID_ARGUMENT", "root threshold 2"),
    (["--root-key", "{base}/keys/starfall.pub"], "INVALID_ARGUMENT", "starfall.pub: not a PEM private key"),
    (["--timestamp-key", "{base}/loose.key"], "SIGNING_KEY_REFUSED", "chmod 600 {base}/loose.key"),
])
def test_a_failing_trust_init_writes_nothing_and_init_then_works(repo, more, code, names):
    shutil.copy(repo / "keys" / "timestamp.key", repo / "loose.key")
    os.chmod(repo / "loose.key", 0o644)
    before = listing(repo)
    p = depot(repo, *init_args(repo), *[str(a).format(base=repo) for a in more], check=2)
    assert error(p)[0] == code and names.format(base=repo) in error(p)[1]
    assert listing(repo) == before
    depot(repo, *init_args(repo))
    assert {r["role"] for r in json.loads(depot(repo, "--json", "trust", "status").stdout)["roles"]} == {
        "root", "targets", "snapshot", "timestamp"}


class _FailsToCommit:
    """The repository's store, failing where init commits (writing ``timestamp.json``)."""

    def __init__(self, store):
        self.store = store

    def __getattr__(self, name):
        return getattr(self.store, name)

    def put_if_match(self, key, data, tag):
        if key == layout.metadata_key("timestamp"):
            raise StoreUnavailable(f"{self.store.url}: the connection was lost")
        return self.store.put_if_match(key, data, tag)


def test_an_init_that_fails_at_its_commit_takes_back_what_it_wrote(repo):
    store = open_store(str(repo / "repo"))
    before = sorted(store.list())
    signers = {k: keys.load_signer(repo / d / f"{k}.key") for d, names in
               (("offline", ["root"]), ("keys", ["targets", "snapshot", "timestamp"])) for k in names}
    with pytest.raises(StoreUnavailable, match="the connection was lost"):
        repository.init(_FailsToCommit(store), [signers["root"]], 1, signers["targets"], signers["snapshot"],
                        signers["timestamp"])
    assert sorted(store.list()) == before
    repository.init(store, [signers["root"]], 1, signers["targets"], signers["snapshot"], signers["timestamp"])
    assert is_signed(store)


def test_what_a_killed_init_left_is_not_a_root_of_trust_and_init_replaces_it(repo, tmp_path_factory):
    """A root written without its timestamp (an init killed before its commit): the
    repository is unsigned for every command, and the next init signs it when told to
    replace what was left."""
    other = tmp_path_factory.mktemp("other")
    keys.generate(other / "offline", ["root"])
    keys.generate(other / "keys", ["targets", "snapshot", "timestamp"])
    (other / "repo").mkdir()
    depot(other, *init_args(other))
    (repo / "repo" / "metadata").mkdir()
    for name in ("1.root.json", "1.targets.json"):
        shutil.copy(other / "repo" / "metadata" / name, repo / "repo" / "metadata" / name)
    shutil.copy(other / "repo" / "trust.json", repo / "repo" / "trust.json")

    assert error(depot(repo, "trust", "status", check=3))[0] == "NOT_FOUND"
    assert "not signed" in error(depot(repo, "trust", "root", "-o", repo / "root.json", check=3))[1]
    assert not (repo / "root.json").exists()
    before = listing(repo)
    assert error(depot(repo, *init_args(repo), check=6)) == (  # it could be an init still running
        "VERSION_CONFLICT", f"{repo / 'repo'}: another trust init is running, or one was stopped before it finished "
                            "(metadata/1.root.json without metadata/timestamp.json); once none is running, run "
                            "trust init again with --replace-unfinished")
    assert listing(repo) == before
    depot(repo, *init_args(repo, None, "--expires", "timestamp=2h", "--replace-unfinished"))
    root = json.loads((repo / "repo" / "metadata" / "1.root.json").read_text())
    mine = keys.load_public(repo / "offline" / "root.pub").keyid
    assert root["signed"]["roles"]["root"]["keyids"] == [mine]
    assert json.loads((repo / "repo" / "trust.json").read_text())["lifetimes"]["timestamp"] == 7200
    depot(repo, "--keys", repo / "keys", "trust", "add-key", "-p", PRODUCT, "--key", repo / "keys" / f"{PRODUCT}.pub")
    depot(repo, "--keys", repo / "keys", "trust", "sign", "-p", PRODUCT)
    depot(repo, "trust", "root", "-o", repo / "root.json")
    depot(repo, "install", "--origin", repo / "repo", "--trust", repo / "root.json", "-p", PRODUCT, "-v", "1.0.0",
          "--dest", repo / "game")


class _SecondInitMidway:
    """The repository's store, running ``then`` once, when init has claimed the root and is
    about to write ``trust.json``: a second init racing the first one."""

    def __init__(self, store, then):
        self.store, self.then, self.done = store, then, False

    def __getattr__(self, name):
        return getattr(self.store, name)

    def _midway(self, key):
        if key == layout.TRUST_SETTINGS_KEY and not self.done:
            self.done = True
            self.then()

    def put(self, key, data):
        self._midway(key)
        return self.store.put(key, data)

    def put_if_match(self, key, data, tag):
        self._midway(key)
        return self.store.put_if_match(key, data, tag)


def _init_keys(base: Path, offline: str = "offline", online: str = "keys") -> list:
    """init's keys from ``base``: the root key and threshold 1, then the online keys."""
    root, *rest = [keys.load_signer(base / d / f"{k}.key") for d, k in
                   ((offline, "root"), (online, "targets"), (online, "snapshot"), (online, "timestamp"))]
    return [[root], 1, *rest]


def _verified_under(store, root_keyid: str) -> dict:
    """The first metadata, each checked against the root it names; the lifetimes it was set up with."""
    root = Metadata.from_bytes(store.get(layout.metadata_key("root", 1)))
    assert root.signed.roles["root"].keyids == [root_keyid]
    root.verify_delegate("root", root)
    for role, key in (("targets", layout.metadata_key("targets", 1)), ("snapshot", layout.metadata_key("snapshot", 1)),
                      ("timestamp", layout.metadata_key("timestamp"))):
        root.verify_delegate(role, Metadata.from_bytes(store.get(key)))
    return json.loads(store.get(layout.TRUST_SETTINGS_KEY))["lifetimes"]


def test_of_two_racing_inits_the_second_stops_at_the_root_and_writes_nothing(repo, tmp_path):
    keys.generate(tmp_path / "other", ["root", "targets", "snapshot", "timestamp"])
    store = open_store(str(repo / "repo"))
    seen = {}

    def second():
        seen["before"] = sorted(store.list())
        with pytest.raises(VersionConflict, match="another trust init is running, or one was stopped") as exc:
            repository.init(store, *_init_keys(tmp_path, "other", "other"),
                            Lifetimes().with_changes({"timestamp": 10800}))
        assert exc.value.exit_code == 6
        seen["after"] = sorted(store.list())

    repository.init(_SecondInitMidway(store, second), *_init_keys(repo),
                    Lifetimes().with_changes({"timestamp": 7200}))
    assert seen["before"] == seen["after"]
    mine = keys.load_public(repo / "offline" / "root.pub").keyid
    assert _verified_under(store, mine)["timestamp"] == 7200


def test_an_init_whose_root_was_replaced_midway_stops_and_leaves_the_winners_files(repo, tmp_path):
    """Replacing an unfinished root is for when no init is running; if one is, it finds its
    root gone before its next write and stops, and the repository is the other init's."""
    keys.generate(tmp_path / "other", ["root", "targets", "snapshot", "timestamp"])
    store = open_store(str(repo / "repo"))

    def second():
        repository.init(store, *_init_keys(tmp_path, "other", "other"),
                        Lifetimes().with_changes({"timestamp": 10800}), replace_unfinished=True)

    with pytest.raises(VersionConflict, match="another trust init took over the root; this one stops and leaves "
                                              "that init's files") as exc:
        repository.init(_SecondInitMidway(store, second), *_init_keys(repo),
                        Lifetimes().with_changes({"timestamp": 7200}))
    assert exc.value.exit_code == 6
    other = keys.load_public(tmp_path / "other" / "root.pub").keyid
    assert _verified_under(store, other)["timestamp"] == 10800
    assert is_signed(store)


# -- the root key stays offline -----------------------------------------------------------------


@pytest.mark.parametrize("role", ["targets", "snapshot", "timestamp"])
def test_trust_init_refuses_a_root_key_for_an_online_role_naming_the_option(repo, role):
    before = listing(repo)
    args = init_args(repo)
    args[args.index(f"--{role}-key") + 1] = repo / "offline" / "root.key"
    assert error(depot(repo, *args, check=2)) == (
        "INVALID_ARGUMENT", f"--{role}-key is a root key: the root key stays offline, so an online role needs a key "
                            "of its own")
    assert listing(repo) == before
    k = keys.load_signer(repo / "offline" / "root.key")
    with pytest.raises(InvalidArgument, match="--targets-key is a root key"):
        repository.init(open_store(str(repo / "repo")), [k], 1, k, k, k)
    assert listing(repo) == before


def _signed_with_one_key_for_every_role(store, k) -> None:
    """A repository set up before a root key was refused for online roles: one key for all."""
    expires = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=1)
    root = Metadata(Root(expires=expires, consistent_snapshot=True))
    for role in ("root", "targets", "snapshot", "timestamp"):
        root.signed.add_key(k.public_key, role)
    snapshot = Metadata(Snapshot(expires=expires))
    snapshot.signed.meta["targets.json"] = MetaFile(version=1)
    store.put(layout.TRUST_SETTINGS_KEY, Lifetimes().to_bytes())
    for key, md in ((layout.metadata_key("root", 1), root), (layout.metadata_key("targets", 1),
                                                             Metadata(Targets(expires=expires))),
                    (layout.metadata_key("snapshot", 1), snapshot),
                    (layout.metadata_key("timestamp"), Metadata(Timestamp(expires=expires,
                                                                          snapshot_meta=MetaFile(version=1))))):
        md.sign(k)
        store.put(key, md.to_bytes(JSONSerializer(compact=True)))


def test_a_repository_whose_root_key_also_signs_online_keeps_signing(repo):
    store = open_store(str(repo / "repo"))
    _signed_with_one_key_for_every_role(store, keys.load_signer(repo / "offline" / "root.key"))
    online = repo / "online"
    online.mkdir(mode=0o700)
    for name in ("root.key", "root.pub", f"{PRODUCT}.key", f"{PRODUCT}.pub"):
        shutil.copy2(repo / ("offline" if name.startswith("root") else "keys") / name, online / name)
    p = depot(repo, "--keys", online, "trust", "add-key", "-p", PRODUCT, "--key", online / f"{PRODUCT}.pub")
    assert p.stderr == ""
    r = json.loads(depot(repo, "--json", "--keys", online, "trust", "sign", "-p", PRODUCT).stdout)
    assert r["commit"]["roles"] == {f"product-{PRODUCT}": 1}
    assert repository.offline_keyids(store) == frozenset()


def test_a_root_key_is_refused_as_a_release_key(repo):
    depot(repo, *init_args(repo))
    before = listing(repo)
    root = keys.load_public(repo / "offline" / "root.pub").keyid
    p = depot(repo, "--keys", repo / "keys", "trust", "add-key", "-p", PRODUCT, "--key", repo / "offline" / "root.pub",
              check=2)
    assert error(p) == ("INVALID_ARGUMENT", f"key {root} is a root key: the root key stays offline, so it cannot be "
                                            f"a release key of {PRODUCT}")
    assert listing(repo) == before
    assert repository.offline_keyids(open_store(str(repo / "repo"))) == {root}


# -- keys at rest -------------------------------------------------------------------------------


def test_key_directories_are_0700_keys_0600_and_public_keys_0644_whatever_the_umask(tmp_path):
    made = json.loads(depot(tmp_path, "--json", "keys", "generate", "--out", tmp_path / "a" / "keys", "k", "l",
                            umask=0).stdout)["keys"]
    assert mode(tmp_path / "a" / "keys") == 0o700
    for k in made:
        assert (mode(k["private"]), mode(k["public"]), k["encrypted"]) == (0o600, 0o644, False)


def test_a_private_key_readable_by_others_is_refused_naming_the_fix(repo):
    depot(repo, *init_args(repo))
    key = repo / "keys" / f"{PRODUCT}.key"
    os.chmod(key, 0o640)
    p = depot(repo, "--keys", repo / "keys", "trust", "add-key", "-p", PRODUCT, "--key", repo / "keys" / f"{PRODUCT}.pub",
              check=2)
    assert error(p) == ("SIGNING_KEY_REFUSED", f"{key}: a private key readable by others (mode 0640) is not used: "
                                               f"run `chmod 600 {key}`")
    os.chmod(key, 0o600)
    depot(repo, "--keys", repo / "keys", "trust", "add-key", "-p", PRODUCT, "--key", repo / "keys" / f"{PRODUCT}.pub")


def test_root_keys_in_the_keys_directory_are_left_out_with_one_warning(repo):
    depot(repo, *init_args(repo))
    online = repo / "keys"
    for suffix in (".key", ".pub"):  # root.key beside its .pub: never read
        shutil.copy2(repo / "offline" / f"root{suffix}", online / f"root{suffix}")
    shutil.copy2(repo / "offline" / "root.key", online / "copy-of-root.key")  # no .pub: read, then dropped
    p = depot(repo, "--keys", online, "trust", "add-key", "-p", PRODUCT, "--key", online / f"{PRODUCT}.pub")
    assert p.stderr.splitlines() == [
        f"depot: warning: {online / name} is a root key of the repository: not used from --keys (keep root keys "
        "offline; give them with --root-key where needed)" for name in ("copy-of-root.key", "root.key")]
    (online / "root.key").write_text("not even a key: it is never read")
    p = depot(repo, "--keys", online, "run", fixture_tar("1.1.0"), "-p", PRODUCT, "-v", "1.1.0")
    assert f"{online / 'root.key'} is a root key" in p.stderr

    store = open_store(str(repo / "repo"))
    root_ids = repository.offline_keyids(store)
    assert root_ids == {keys.load_public(repo / "offline" / "root.pub").keyid}
    ring = keys.Keyring(online, root_ids)
    with pytest.raises(SigningKeyMissing, match="no key for the root role"):
        ring.signers(root_ids, "root")
    assert sorted(p.name for p in ring.skipped) == ["copy-of-root.key", "root.key"]


def test_encrypted_keys_sign_with_the_passphrase_from_the_environment(repo):
    depot(repo, *init_args(repo))
    enc = repo / "enc"
    for args, names in ((["--passphrase-env", "NOT_SET"], "--passphrase-env NOT_SET"),
                        (["--passphrase"], "--passphrase asks on a terminal")):  # stdin is not one here
        p = depot(repo, "keys", "generate", "--out", enc, *args, "k", check=2)
        assert error(p)[0] == "INVALID_ARGUMENT" and names in error(p)[1]
    assert not enc.exists()
    made = json.loads(depot(repo, "--json", "keys", "generate", "--out", enc, "--passphrase-env", "MY_PASS",
                            f"{PRODUCT}-2", env={"MY_PASS": "correct horse"}).stdout)["keys"][0]
    assert made["encrypted"] is True
    data = Path(made["private"]).read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert load_pem_private_key(data, b"correct horse")  # PEM, as cryptography reads it
    with pytest.raises(TypeError):
        load_pem_private_key(data, None)

    online = repo / "keys"
    (online / f"{PRODUCT}.key").unlink()
    for suffix in (".key", ".pub"):
        shutil.copy2(enc / f"{PRODUCT}-2{suffix}", online / f"{PRODUCT}-2{suffix}")
    depot(repo, "--keys", online, "trust", "add-key", "-p", PRODUCT, "--key", online / f"{PRODUCT}-2.pub")
    key = online / f"{PRODUCT}-2.key"
    sign = ("--keys", online, "trust", "sign", "-p", PRODUCT)
    assert error(depot(repo, *sign, check=2)) == (
        "SIGNING_KEY_REFUSED", f"{key}: the key is encrypted: set DEPOT_KEY_PASSPHRASE to its passphrase, "
                               "or run on a terminal to be asked for it")
    assert error(depot(repo, *sign, check=2, env={"DEPOT_KEY_PASSPHRASE": "wrong"})) == (
        "SIGNING_KEY_REFUSED", f"{key}: wrong passphrase for the encrypted key")
    before = tree_snapshot(repo / "repo")
    assert error(depot(repo, *sign, check=2, env={"DEPOT_KEY_PASSPHRASE": "wrong"}))[0] == "SIGNING_KEY_REFUSED"
    assert tree_snapshot(repo / "repo") == before
    r = json.loads(depot(repo, "--json", *sign, env={"DEPOT_KEY_PASSPHRASE": "correct horse"}).stdout)
    assert r["commit"]["roles"] == {f"product-{PRODUCT}": 1}


def test_a_passphrase_is_asked_for_on_a_terminal(repo):
    """``--passphrase`` asks twice on the terminal; a signing command asks for the
    passphrase of an encrypted key it needs."""
    import pty

    def on_terminal(args: list, answers: list[bytes]) -> tuple[int, bytes]:
        pid, fd = pty.fork()
        if pid == 0:  # the child: depot, with the pseudo-terminal as its terminal
            os.chdir(repo)
            env = {k: v for k, v in os.environ.items() if k not in ("DEPOT_KEYS", "DEPOT_KEY_PASSPHRASE")}
            os.execve(DEPOT[0], DEPOT + ["--repo", str(repo / "repo"), *map(str, args)], env)
        seen, pos = b"", 0
        for answer in answers:
            while not seen[pos:].rstrip().endswith(b":"):  # the prompt
                seen += os.read(fd, 1024)
            os.write(fd, answer + b"\n")
            pos = len(seen)
        while True:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), seen

    code, out = on_terminal(["keys", "generate", "--out", repo / "enc", "--passphrase", "k"], [b"s3cret", b"s3cret"])
    assert code == 0, out
    assert load_pem_private_key((repo / "enc" / "k.key").read_bytes(), b"s3cret")
    depot(repo, *init_args(repo, repo / "enc" / "k.key"), check=2)
    assert not is_signed(open_store(str(repo / "repo")))  # stdin not a terminal, no DEPOT_KEY_PASSPHRASE: refused
    code, out = on_terminal(init_args(repo, repo / "enc" / "k.key"), [b"s3cret"])
    assert code == 0, out
    assert b"Passphrase for" in out and is_signed(open_store(str(repo / "repo")))


def test_keys_generate_into_a_directory_it_cannot_write_is_a_clear_error(tmp_path):
    out = tmp_path / "locked"
    out.mkdir()
    if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0:
        unavailable("chattr +i is not available on this filesystem")
    try:
        p = depot(tmp_path, "keys", "generate", "--out", out, "a", "b", check=9)
        code, message = error(p)
        assert (code, message.split(":")[0]) == ("STORE_UNAVAILABLE", str(out)) and "cannot write keys" in message
        assert list(out.iterdir()) == []
    finally:
        subprocess.run(["chattr", "-i", str(out)])


def test_keys_generate_with_a_name_given_twice_names_it_and_creates_nothing(tmp_path):
    p = depot(tmp_path, "keys", "generate", "--out", tmp_path / "k3", "a", "b", "a", check=2)
    code, message = error(p)
    assert code == "INVALID_ARGUMENT" and "'a' given twice" in message
    assert not (tmp_path / "k3").exists()


def test_keys_generate_that_fails_midway_removes_the_files_and_directories_it_made(tmp_path):
    """A disk that fills up after the first key: a tmpfs of two pages holds one key's two
    files, not a second key. The error names the directory; nothing the call made is left."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.fail("this test mounts a small tmpfs: run the suite as root (CI does)")
    try:
        assert [k.name for k in keys.generate(disk / "fits", ["a"])] == ["a"]
        shutil.rmtree(disk / "fits")
        with pytest.raises(StoreUnavailable) as err:
            keys.generate(disk / "new" / "k", ["a", "b"])
        assert str(err.value) == f"{disk / 'new' / 'k'}: cannot write keys there (No space left on device)"
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)
