"""Content keys on the release side (trust.content_keys): one file per embargoed version in
the keys directory, under the signing keys' rules, and never read as a signing key."""

from __future__ import annotations

import os
import stat

import pytest

from pipeline.errors import InvalidArgument, SigningKeyMissing, SigningKeyRefused, VersionConflict
from pipeline.formats.content_key import ContentKey
from pipeline.trust import content_keys, keys
from pipeline.trust.keys import Keyring


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_key_is_made_private_once_and_read_back(tmp_path):
    old = os.umask(0o022)
    try:
        made = content_keys.create(tmp_path / "keys", "starfall", "1.2.0")
    finally:
        os.umask(old)
    path = tmp_path / "keys" / "content" / "starfall" / "1.2.0.json"
    assert (mode(tmp_path / "keys"), mode(tmp_path / "keys" / "content"), mode(path.parent), mode(path)) == \
        (0o700, 0o700, 0o700, 0o600)
    assert path.read_bytes() == made.to_bytes() and ContentKey.from_bytes(path.read_bytes(), "") == made
    assert content_keys.load(tmp_path / "keys", "starfall", "1.2.0") == made
    assert content_keys.load_or_create(tmp_path / "keys", "starfall", "1.2.0") == made  # a rebuild: the same key
    with pytest.raises(VersionConflict) as again:
        content_keys.create(tmp_path / "keys", "starfall", "1.2.0")
    assert str(again.value) == (f"{path} exists: starfall 1.2.0 has a content key already, and a key is never "
                                "replaced")
    assert path.read_bytes() == made.to_bytes()
    other = content_keys.load_or_create(tmp_path / "keys", "starfall", "1.3.0")
    assert other.key != made.key and other.version == "1.3.0"
    found = content_keys.ContentKeys(tmp_path / "keys")
    assert (found.find(made.key_id), found.find(other.key_id), found.find("0" * 32)) == (made, other, None)


def test_refused_when_missing_readable_by_others_or_another_versions(tmp_path):
    with pytest.raises(SigningKeyMissing) as missing:
        content_keys.load(tmp_path, "starfall", "1.2.0")
    assert missing.value.exit_code == 2 and str(missing.value).startswith(
        f"{tmp_path}/content/starfall/1.2.0.json: cannot read the content key of starfall 1.2.0")
    with pytest.raises(SigningKeyMissing) as no_dir:
        content_keys.load(None, "starfall", "1.2.0")
    assert "--keys DIR" in str(no_dir.value)
    content_keys.create(tmp_path, "starfall", "1.2.0")
    path = tmp_path / "content" / "starfall" / "1.2.0.json"
    os.chmod(path, 0o644)
    with pytest.raises(SigningKeyRefused) as refused:
        content_keys.load(tmp_path, "starfall", "1.2.0")
    assert str(refused.value) == (f"{path}: a private key readable by others (mode 0644) is not used: "
                                  f"run `chmod 600 {path}`")
    assert content_keys.ContentKeys(tmp_path).find(ContentKey.from_bytes(path.read_bytes(), "").key_id) is None
    os.chmod(path, 0o600)
    os.link(path, tmp_path / "content" / "starfall" / "1.3.0.json")
    with pytest.raises(InvalidArgument) as swapped:
        content_keys.load(tmp_path, "starfall", "1.3.0")
    assert "is the content key of starfall 1.2.0, not starfall 1.3.0" in str(swapped.value)


def test_a_keyring_of_the_directory_leaves_content_keys_alone(tmp_path):
    made = keys.generate(tmp_path, ["starfall"])[0]
    content_keys.create(tmp_path, "starfall", "1.2.0")
    ring = Keyring(tmp_path)
    assert [s.public_key.keyid for s in ring.signers([made.keyid], "product-starfall")] == [made.keyid]
