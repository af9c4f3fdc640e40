"""Refusing build entries that could escape or confuse an install directory.

A build is installed on players' machines, so anything that could write outside the
install directory, through a link, or ambiguously is refused at ingest, with the entry
named, before anything is written. The client checks every manifest with the same
function (``check_entries``), so a build that ingests is a build that installs.
"""

from __future__ import annotations

import itertools
import posixpath
import re
from typing import Iterable, NamedTuple, Protocol, TypeVar

from ..errors import UnsafeEntry


class TreeEntry(Protocol):
    @property
    def path(self) -> str: ...

    @property
    def type(self) -> str: ...  # "file" | "dir" | "symlink"

    @property
    def target(self) -> str: ...


E = TypeVar("E", bound=TreeEntry)

STATE_DIR = ".depot"  # the client's own state in a game directory: no build may write there

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Code points HFS+ leaves out of a name when it compares names: ".de\u200cpot" is ".depot" there.
_IGNORED_BY_HFS = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def clean_path(name: str, source: str) -> str | None:
    """The canonical relative POSIX path of an archive or directory entry name.

    Returns None for the build root itself ("." or "./"); raises UnsafeEntry otherwise.
    """
    path = name
    while path.startswith("./"):
        path = path[2:]
    path = path.rstrip("/") if path not in ("/",) else path
    if path in ("", "."):
        return None

    def refuse(why: str):
        raise UnsafeEntry(f"{source}: unsafe entry {name!r}: {why}")

    if path.startswith("/") or _DRIVE.match(path):
        refuse("absolute path")
    if "\\" in path:
        refuse("backslash in path")
    if _CONTROL.search(path):
        refuse("control character in path")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        refuse("name is not valid UTF-8")
    parts = path.split("/")
    if ".." in parts:
        refuse("'..' in path")
    if "" in parts or "." in parts:
        refuse("not a canonical path (empty or '.' component)")
    return path


def is_state_dir(name: str) -> bool:
    """Whether a file system may take ``name`` for ``STATE_DIR``: in any letter case (NTFS,
    APFS and HFS+ ignore it), with the trailing dots and spaces Windows drops, or with the
    code points HFS+ ignores."""
    return _IGNORED_BY_HFS.sub("", name).rstrip(". ").casefold() == STATE_DIR


def check_tree(entries: Iterable[E], source: str) -> list[E]:
    """The build's entries sorted by path, with directories kept only where empty, once
    ``check_entries`` passed them. Ingest runs it on a build."""
    entries = list(entries)
    has_children = check_entries(entries, source)
    kept = [e for e in entries if not (e.type == "dir" and e.path in has_children)]
    return sorted(kept, key=lambda e: e.path)


def check_entries(entries: Iterable[TreeEntry], source: str) -> set[str]:
    """Refuse paths that are not canonical, paths in ``STATE_DIR`` (in any letter case:
    see ``is_state_dir``), duplicates, entries below a file or a link (writing through a
    link is how archives escape), and links whose target is absolute or leads outside the
    build. Raises UnsafeEntry naming the first bad entry; returns the paths that have
    entries below them. Ingest (through ``check_tree``) and the client, on every manifest
    it installs, run it; entries are taken one at a time and not kept (the client reads
    a million from a manifest's columns): a type per path is."""
    tops: set[str] = set()  # top-level names found not to be STATE_DIR
    types: dict[str, str] = {}
    duplicate = None
    links: dict[str, str] = {}
    for e in entries:
        if clean_path(e.path, source) != e.path:
            raise UnsafeEntry(f"{source}: unsafe entry {e.path!r}: not a canonical path")
        top = e.path.partition("/")[0]
        if top not in tops:
            if is_state_dir(top):
                raise UnsafeEntry(f"{source}: unsafe entry {e.path!r}: the name is kept for depot's own state")
            tops.add(top)
        if e.path in types:
            duplicate = duplicate or e.path  # named once every path is known to be canonical
        else:
            types[e.path] = e.type
            if e.type == "symlink":
                links[e.path] = e.target
    if duplicate is not None:
        raise UnsafeEntry(f"{source}: duplicate entry {duplicate!r}")

    has_children: set[str] = set()
    for path in types:
        parent = posixpath.dirname(path)
        while parent and parent not in has_children:  # one seen before: it and those above it passed
            above = types.get(parent)
            if above is not None and above != "dir":
                raise UnsafeEntry(f"{source}: {path!r} is inside {parent!r}, which is a {above}")
            has_children.add(parent)
            parent = posixpath.dirname(parent)

    for path in links:
        _check_link(path, links, source)
    return has_children


class _Entry(NamedTuple):
    path: str
    type: str
    target: str = ""


_TYPES = {"d": "dir", "l": "symlink"}  # any other letter: a file


def check_columns(paths: list[str], types: str, targets: list[str], source: str) -> None:
    """``check_entries`` for entries given as columns (a manifest's: ``types`` a letter per
    path, "d" a directory, "l" a link, any other a file; a target per link, in order),
    made with no object per entry: a million paths are tested by a few passes over them
    joined, the entries below a file or a link by their directories. Whatever these
    passes cannot clear is given to ``check_entries``, which names the first bad entry."""
    if not _surely_safe(paths, types, targets):
        each = iter(targets)
        check_entries((_Entry(p, _TYPES.get(t, "file"), next(each) if t == "l" else "")
                       for p, t in zip(paths, types)), source)
        return
    links = dict(zip((p for p, t in zip(paths, types) if t == "l"), targets)) if targets else {}
    for path in links:
        _check_link(path, links, source)


def _surely_safe(paths: list[str], types: str, targets: list[str]) -> bool:
    """Whether ``check_entries`` would refuse none of these entries but for their links'
    targets: canonical paths in strictly increasing order (no duplicate), none in
    STATE_DIR, none below a file or a link. False when in doubt."""
    if len(paths) != len(types) or types.count("l") != len(targets):
        return False
    if not all(map(str.__lt__, paths, itertools.islice(paths, 1, None))):
        return False
    joined = "/" + "/".join(paths) + "/"  # a path's ends and its parts' alike: between slashes
    # isprintable: no control character (nor some harmless ones: those are left to check_entries)
    if not joined.isprintable() or any(bad in joined for bad in ("//", "/./", "/../", "\\")) or \
            re.search("/[A-Za-z]:", joined):
        return False
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return False
    del joined
    parents = {p.rpartition("/")[0] for p in paths}  # a few thousand where there are a million paths
    parents.discard("")
    above: set[str] = set()
    for d in parents:
        while d and d not in above:
            above.add(d)
            d = d.rpartition("/")[0]
    tops = {d.partition("/")[0] for d in above}
    tops.update([p for p in paths if "/" not in p])
    if any(is_state_dir(t) for t in tops):
        return False
    # a directory's own entry, if it has one, must be a directory
    not_dirs = paths if "d" not in types else itertools.compress(paths, types.encode().translate(_NOT_DIR))
    return above.isdisjoint(not_dirs)


_NOT_DIR = bytes(b != ord("d") for b in range(256))  # a type letter -> whether it is not a directory's


MAX_LINK_HOPS = 40


def _check_link(path: str, links: dict[str, str], source: str) -> None:
    """Resolve the link the way a kernel would, following the build's other links, and
    refuse it if any step leaves the build. Lexical checks alone are not enough: with
    ``s -> .``, the target ``s/..`` looks inside but is the build's parent."""
    target = links[path]
    if not target or target.startswith("/") or _DRIVE.match(target) or "\\" in target:
        raise UnsafeEntry(f"{source}: link {path!r} -> {target!r}: target must be a relative path")
    if _CONTROL.search(target):
        raise UnsafeEntry(f"{source}: link {path!r}: control character in target")
    current = path.split("/")[:-1]
    pending = target.split("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not current:
                raise UnsafeEntry(f"{source}: link {path!r} -> {target!r} points outside the build")
            current.pop()
            continue
        current.append(part)
        inner = links.get("/".join(current))
        if inner is not None:
            hops += 1
            if hops > MAX_LINK_HOPS or inner.startswith("/"):
                raise UnsafeEntry(f"{source}: link {path!r} -> {target!r} does not resolve inside the build")
            current.pop()
            pending = inner.split("/") + pending

