"""Measuring and reporting shared by the benchmark scripts.

``bench_ingest.py``, ``bench_install.py``, ``bench_delta.py``, ``bench_publish.py`` and
``release_pairs.py`` take from here: installing the peer tools, running a command while
sampling its process tree's memory (between syncs, with the other load it met), the depot
command and its JSON, the casync and depot runs that make a store from the corpus,
scanning, hashing and comparing trees, the common options and the report's formatting.
Each script keeps its own runs and its own table.

psutil is imported by the measuring functions only, so that ``release_pairs.py``, which
measures nothing, runs without it.

Units are binary: MiB = 2**20 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

import bench_corpus
from pipeline.core.hashing import sha256_file

MiB = 1 << 20

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# depot's default chunk sizes; casync gets the same so that the stores compare
CHUNK_MIN = 256 * 1024
CHUNK_AVG = 1024 * 1024
CHUNK_MAX = 4 * 1024 * 1024

TIME_BINARY = "/usr/bin/time"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def remove_workdir(workdir: str, keep: bool) -> None:
    """End of a run: remove the temporary directory, or say where it was kept."""
    if keep:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------
# peer tools and the machine


def apt_install(*packages: str) -> str | None:
    """apt-get install -y the packages, after an apt-get update if the first
    try fails.  None on success, else apt-get's stderr."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL,
                      stderr=subprocess.PIPE).returncode == 0:
        return None
    log(f"apt-get install {' '.join(packages)} failed; running apt-get update and retrying")
    subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    res = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return None if res.returncode == 0 else res.stderr.decode(errors="replace").strip()


def have(binary: str) -> bool:
    """Whether binary (a name on PATH, or an absolute path) can run."""
    if binary.startswith("/"):
        return os.access(binary, os.X_OK)
    return shutil.which(binary) is not None


def ensure_tools(tools: dict[str, str]) -> None:
    """Install the Debian packages of the missing tools ({binary: package}) with
    apt-get; exits when that is impossible."""
    missing = sorted({pkg for binary, pkg in tools.items() if not have(binary)})
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise SystemExit(f"missing Debian packages {' '.join(missing)} and no apt-get")
    log(f"installing Debian packages: {' '.join(missing)}")
    err = apt_install(*missing)
    if err is not None or not all(have(binary) for binary in tools):
        raise SystemExit(f"could not install {' '.join(missing)} (needs root and apt):\n"
                         + (err or ""))


def time_binary() -> str | None:
    """GNU time, used for the exact peak RSS of the largest single process.

    (``ru_maxrss`` from our own wait4 is useless here: a child forked from this
    Python process starts with the parent's resident set, and the kernel keeps
    that high-water mark across exec.  /usr/bin/time is a small C program, so
    the rusage it reports for its own child is accurate.)"""
    return TIME_BINARY if have(TIME_BINARY) else None


def ensure_time_binary() -> None:
    """Install GNU time if missing; without it the peak RSS of the largest
    process is sampled only."""
    try:
        ensure_tools({TIME_BINARY: "time"})
    except SystemExit as e:
        log(f"{e}; the largest single-process RSS will be sampled only")


def tool_version(cmd: list[str]) -> str:
    """The first line a tool prints about its version, or ""."""
    try:
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=30)
        lines = res.stdout.decode(errors="replace").strip().splitlines()
        return lines[0].strip() if lines else ""
    except Exception:
        return ""


def machine_info() -> dict:
    """The machine a report was made on."""
    import psutil

    return {"cpus": os.cpu_count(), "mem_total_mib": psutil.virtual_memory().total / MiB,
            "python": platform.python_version()}


# --------------------------------------------------------------------------
# trees


def tree_bytes(path: str) -> tuple[int, int]:
    """(sum of file sizes, number of files) below path."""
    total = count = 0
    for dirpath, _, files in os.walk(path):
        for fn in files:
            try:
                total += os.lstat(os.path.join(dirpath, fn)).st_size
                count += 1
            except FileNotFoundError:
                pass
    return total, count


def scan_tree(root: str) -> dict[str, tuple]:
    """{relative path: ("file", size) | ("symlink", target) | ("other", mode)}."""
    out: dict[str, tuple] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                out[rel] = ("file", st.st_size)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(full))
            else:
                out[rel] = ("other", stat.S_IFMT(st.st_mode))
    return out


def regular_files(entries: dict[str, tuple]) -> dict[str, int]:
    """{relative path: size} of the regular files of a scan_tree result."""
    return {rel: e[1] for rel, e in entries.items() if e[0] == "file"}


def hash_tree(root: str, entries: dict[str, tuple], pool) -> dict[str, str]:
    """SHA-256 of every regular file of entries (a scan_tree result), on pool's threads."""
    files = list(regular_files(entries))
    # largest first, so the pool does not end with one big file on one thread
    files.sort(key=lambda rel: -entries[rel][1])
    digests = pool.map(lambda rel: sha256_file(os.path.join(root, *rel.split("/"))), files)
    return dict(zip(files, digests))


def compare_trees(ref: dict[str, tuple], ref_hashes: dict[str, str], dest: str,
                  pool, ignore_top: tuple[str, ...] = (), limit: int = 20) -> dict:
    """Compare dest with the reference; entries under a top-level directory named
    in ignore_top (a tool's own state, e.g. depot's ``.depot/``) are left out."""
    got = scan_tree(dest)
    ignored = sorted(rel for rel in got
                     if rel.split("/", 1)[0] in ignore_top and rel not in ref)
    for rel in ignored:
        del got[rel]
    missing = sorted(set(ref) - set(got))
    extra = sorted(set(got) - set(ref))
    differ = []
    common = sorted(set(ref) & set(got))
    same_kind = []
    for rel in common:
        if ref[rel] != got[rel]:
            differ.append({"path": rel, "expected": list(ref[rel]), "got": list(got[rel])})
        elif ref[rel][0] == "file":
            same_kind.append(rel)
    hashes = hash_tree(dest, {rel: got[rel] for rel in same_kind}, pool)
    for rel in same_kind:
        if hashes[rel] != ref_hashes[rel]:
            differ.append({"path": rel, "expected": ref_hashes[rel], "got": hashes[rel]})
    differ.sort(key=lambda d: d["path"])
    return {
        "ok": not (missing or extra or differ),
        "files_checked": len(hashes),
        "bytes_checked": sum(got[rel][1] for rel in same_kind),
        "missing": len(missing), "extra": len(extra), "different": len(differ),
        "ignored": ignored[:limit], "ignored_count": len(ignored),
        "missing_paths": missing[:limit], "extra_paths": extra[:limit],
        "different_paths": differ[:limit],
    }


# --------------------------------------------------------------------------
# measurement


class TreeSampler(threading.Thread):
    """Samples the summed RSS/PSS of a process and all its descendants.

    With ``skip_root`` the root process itself (a ``/usr/bin/time`` wrapper)
    is not counted, only its descendants."""

    def __init__(self, pid: int, interval: float, skip_root: bool = False):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.skip_root = skip_root
        self.stop_event = threading.Event()
        self.peak_rss = 0
        self.peak_pss = 0
        self.max_single_rss = 0
        self.max_procs = 0
        self.samples = 0
        self.pss_ok = True
        self._procs: dict = {}  # pid -> psutil.Process

    def _tree(self) -> list:
        import psutil

        try:
            root = self._procs.get(self.pid) or psutil.Process(self.pid)
            self._procs[self.pid] = root
            kids = root.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return []
        procs = [] if self.skip_root else [root]
        for k in kids:  # reuse Process objects: cheaper, and pid-reuse safe
            procs.append(self._procs.setdefault(k.pid, k))
        return procs

    def sample(self) -> None:
        import psutil

        rss = pss = 0
        procs = self._tree()
        for p in procs:
            try:
                if self.pss_ok:
                    try:
                        mi = p.memory_full_info()
                        one, one_pss = mi.rss, getattr(mi, "pss", mi.rss)
                    except psutil.AccessDenied:
                        self.pss_ok = False
                        one = one_pss = p.memory_info().rss
                else:
                    one = one_pss = p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            rss += one
            pss += one_pss
            self.max_single_rss = max(self.max_single_rss, one)
        self.samples += 1
        self.max_procs = max(self.max_procs, len(procs))
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)


def run_measured(name: str, cmd: list[str], workdir: str, interval: float,
                 cwd: str | None = None, env: dict | None = None) -> dict:
    """Run cmd, return wall time, exit code, memory peaks, stdout and stderr."""
    out_path = os.path.join(workdir, f"{name}.stdout")
    err_path = os.path.join(workdir, f"{name}.stderr")
    time_path = os.path.join(workdir, f"{name}.maxrss")
    timebin = time_binary()
    full = ([timebin, "-f", "%M", "-o", time_path, "-q", "--"] + cmd) if timebin else cmd
    free_before = free_memory_mib()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    cwd=cwd, env=env)
        except OSError as e:
            return {"returncode": 127, "error": f"cannot start {cmd[0]}: {e}",
                    "stdout": "", "stderr": str(e)}
        sampler = TreeSampler(proc.pid, interval, skip_root=bool(timebin))
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop_event.set()
        sampler.join()
    with open(out_path, "rb") as f:
        stdout = f.read().decode(errors="replace")
    with open(err_path, "rb") as f:
        stderr = f.read().decode(errors="replace")
    max_single = sampler.max_single_rss
    exact = False
    if timebin:
        try:
            with open(time_path) as f:
                max_single = int(f.read().split()[-1]) * 1024  # KiB
            exact = True
        except (OSError, ValueError, IndexError):
            pass
    return {
        "returncode": proc.returncode,
        "seconds": wall,
        # the tree's peak is at least the peak of its largest single process
        "peak_rss_bytes": max(sampler.peak_rss, max_single),
        "peak_rss_sampled_bytes": sampler.peak_rss,
        "peak_pss_bytes": sampler.peak_pss if sampler.pss_ok else None,
        "max_process_rss_bytes": max_single,
        "max_process_rss_exact": exact,
        "max_processes": sampler.max_procs,
        "samples": sampler.samples,
        "cpu_user_s": round(usage.ru_utime, 3),
        "cpu_sys_s": round(usage.ru_stime, 3),
        "free_mib_before": free_before,
        "stdout": stdout,
        "stderr": stderr,
    }


def busy_cpu_seconds(t0, t1) -> float:
    """CPU seconds the whole machine was busy between two psutil.cpu_times() readings."""
    idle = ("idle", "iowait")
    busy = sum(getattr(t1, f) - getattr(t0, f) for f in t1._fields if f not in idle
               and f not in ("guest", "guest_nice"))  # guest time is inside user
    return round(busy, 3)


def timed_run(name: str, cmd: list[str], workdir: str, interval: float,
              cwd: str | None = None, env: dict | None = None) -> dict:
    """run_measured between two syncs: ``sync`` first, so that writeback of the previous
    step does not land in this measurement, then the time of the ``sync`` right after it
    (the writeback it left behind) is recorded apart (``sync_after_s``), not included.

    Also records the CPU time the whole machine spent outside the measured process tree
    and this script while it ran (``other_cpu_s``: other load, which makes figures noisy;
    kernel writeback threads count there too), and this script's own CPU time
    (``own_cpu_s``: the memory sampler, and any server the script runs in its threads)."""
    import psutil

    t0 = time.perf_counter()
    os.sync()
    before = time.perf_counter() - t0
    log(f"sync before {name}: {before:.2f}s; running {shlex.join(cmd)}")
    cpu0, own0 = psutil.cpu_times(), time.process_time()
    res = run_measured(name, cmd, workdir, interval, cwd=cwd, env=env)
    cpu1, own1 = psutil.cpu_times(), time.process_time()
    t0 = time.perf_counter()
    os.sync()
    res["sync_before_s"] = round(before, 3)
    res["sync_after_s"] = round(time.perf_counter() - t0, 3)
    res["own_cpu_s"] = round(own1 - own0, 3)
    if "cpu_user_s" in res:
        res["machine_busy_cpu_s"] = busy_cpu_seconds(cpu0, cpu1)
        res["other_cpu_s"] = round(max(0.0, res["machine_busy_cpu_s"] - res["cpu_user_s"]
                                       - res["cpu_sys_s"] - res["own_cpu_s"]), 3)
    return res


def noisy_notes(rows: list[dict]) -> list[str]:
    """A note for each report row (with ``tool``, ``seconds`` and ``other_cpu_s``, as
    timed_run measures it) during which other load took more than a tenth of the CPUs."""
    ncpu = os.cpu_count() or 1
    notes = []
    for row in rows:
        other = row.get("other_cpu_s")
        if other is not None and row.get("seconds") and other > 0.1 * ncpu * row["seconds"]:
            notes.append(f"during {row['tool']} other processes kept the machine busy "
                         f"({other:.1f} CPU-s of {ncpu * row['seconds']:.1f} available): "
                         f"its figures are noisy, repeat the benchmark on an idle machine")
    return notes


def free_memory_mib() -> int:
    """Memory the kernel has never had to reclaim from the page cache. On this kind of
    virtual machine, writing into such memory costs several times more (the host backs
    each page on first touch) than into memory recycled from the page cache, so each run
    records it: a tool that starts with gigabytes free pays more for the same writes."""
    import psutil

    return round(psutil.virtual_memory().free / MiB)


def summarize(name: str, res: dict, corpus_bytes: int, stored: int | None, **extra) -> dict:
    """A report row of a run_measured result over the corpus."""
    sec = res["seconds"]
    row = {
        "tool": name,
        "seconds": round(sec, 3),
        "mib_per_s": round(corpus_bytes / MiB / sec, 2) if sec > 0 else None,
        "stored_bytes": stored,
        "stored_mib": round(stored / MiB, 2) if stored is not None else None,
        "peak_rss_mib": round(res["peak_rss_bytes"] / MiB, 1),
        "peak_pss_mib": (round(res["peak_pss_bytes"] / MiB, 1)
                         if res.get("peak_pss_bytes") is not None else None),
        "max_process_rss_mib": round(res["max_process_rss_bytes"] / MiB, 1),
        "max_processes": res["max_processes"],
        "cpu_user_s": res["cpu_user_s"],
        "cpu_sys_s": res["cpu_sys_s"],
        "free_mib_before": res.get("free_mib_before"),
    }
    row.update(extra)
    return row


def throughput_ratio(a: dict, b: dict) -> float:
    """Throughput of row a over that of row b (rows from summarize)."""
    return round(a["mib_per_s"] / b["mib_per_s"], 3)


# --------------------------------------------------------------------------
# depot and casync


def depot_base_command(override: str | None) -> tuple[list[str], str | None, dict | None]:
    """(command, cwd, env) that run depot: override, else depot on PATH, else
    ``python -m cli`` from the repository root."""
    if override:
        return shlex.split(override), None, None
    path = shutil.which("depot")
    if path:
        return [path], None, None
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    return [sys.executable, "-m", "cli"], REPO_ROOT, env


def option_listed(base: list[str], sub: str, option: str, cwd: str | None,
                  env: dict | None, default: bool = False) -> bool:
    """Whether ``depot SUB --help`` lists option; default if the help cannot run."""
    try:
        res = subprocess.run(base + [sub, "--help"], cwd=cwd, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return default
    return option in res.stdout.decode(errors="replace")


def parse_json_output(text: str) -> dict | None:
    """The JSON summary printed by depot: the whole stdout, or its last object."""
    text = text.strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
        return obj if isinstance(obj, dict) else None
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
                if isinstance(obj, dict):
                    return obj
            except ValueError:
                continue
    start = text.rfind("\n{")
    while start != -1:
        try:
            obj = json.loads(text[start + 1:])
            if isinstance(obj, dict):
                return obj
        except ValueError:
            pass
        start = text.rfind("\n{", 0, start)
    return None


def run_depot(corpus: str, workdir: str, interval: float, workers: int | None,
              depot_cmd: str | None) -> tuple[dict, list[str], dict | None, str]:
    """``depot run`` of the corpus into a new repository in workdir:
    (result, command, depot's JSON summary, repository)."""
    repo = os.path.join(workdir, "depot-repo")
    base, cwd, env = depot_base_command(depot_cmd)
    glob = ["--repo", repo, "--json"]
    run = ["run", corpus, "--product", "bench", "--version", "1"]
    if workers:
        # `--workers` is accepted either by `run` or as a global option
        if option_listed(base, "run", "--workers", cwd, env, default=True):
            run += ["--workers", str(workers)]
        else:
            glob += ["--workers", str(workers)]
    cmd = base + glob + run
    res = run_measured("depot", cmd, workdir, interval, cwd=cwd, env=env)
    return res, cmd, parse_json_output(res.get("stdout", "")), repo


def depot_stored_bytes(repo: str, summary: dict | None = None) -> tuple[int, int | None, str]:
    """(bytes, chunk files, source) that depot stored in repo: REPO/chunks,
    else the stored_bytes of depot's JSON summary (if given), else the whole repo."""
    chunks_dir = os.path.join(repo, "chunks")
    if os.path.isdir(chunks_dir):
        return (*tree_bytes(chunks_dir), "measured REPO/chunks")
    if summary and isinstance(summary.get("stored_bytes"), int):
        return summary["stored_bytes"], None, "depot JSON stored_bytes"
    return (*tree_bytes(repo), "measured whole repo")


def log_depot_failure(step: str, failed: dict, command: str | None) -> None:
    """A failed depot command: exit code, command, error, stderr and stdout."""
    log(f"{step} failed (exit {failed['returncode']}): {command}")
    if failed.get("error"):
        log(failed["error"])
    log("--- depot stderr ---")
    log(failed.get("stderr", "").rstrip())
    out = failed.get("stdout", "").rstrip()
    if out:
        log("--- depot stdout ---")
        log(out)


def run_casync(corpus: str, workdir: str,
               interval: float) -> tuple[dict, list[str], str, str]:
    """casync make into workdir, with depot's chunk sizes: (result, command, store, index)."""
    store = os.path.join(workdir, "casync-store")
    index = os.path.join(workdir, "casync.caidx")
    cmd = ["casync", "make", f"--store={store}",
           f"--chunk-size={CHUNK_MIN}:{CHUNK_AVG}:{CHUNK_MAX}",
           "--compression=zstd", index, corpus]
    res = run_measured("casync", cmd, workdir, interval)
    if res["returncode"] != 0:
        raise SystemExit(f"casync failed (exit {res['returncode']}):\n{res['stderr']}")
    return res, cmd, store, index


# --------------------------------------------------------------------------
# corpus and options


def default_corpus_dir(args) -> str:
    base = os.path.join(tempfile.gettempdir(), "depot-bench-corpus")
    if args.single_file_gb and args.single_file_gb > 0:
        return os.path.join(base, f"single-{args.single_file_gb:g}gib-seed{args.seed}")
    return os.path.join(base, f"tree-{args.size_gb:g}gib-seed{args.seed}")


def game_corpus(package: str) -> str:
    """A real game's shipped data: Debian's ``package`` (``redeclipse-data``,
    ``warzone2100-data``, ...) downloaded with ``apt-get download`` and unpacked with
    ``dpkg -x`` under ``$TMPDIR/depot-bench-games/``, once; the directory holding its
    files (``usr/share/games/<name>`` when there is one)."""
    base = os.path.join(tempfile.gettempdir(), "depot-bench-games", package)
    tree = os.path.join(base, "tree")
    if not os.path.isdir(tree):
        os.makedirs(base, exist_ok=True)
        log(f"downloading and unpacking Debian's {package} ...")
        got = subprocess.run(["apt-get", "download", package], cwd=base, stderr=subprocess.PIPE)
        if got.returncode != 0:
            subprocess.run(["apt-get", "update"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            got = subprocess.run(["apt-get", "download", package], cwd=base, stderr=subprocess.PIPE)
        debs = [f for f in os.listdir(base) if f.endswith(".deb")]
        if got.returncode != 0 or not debs:
            raise SystemExit(f"apt-get download {package} failed: {got.stderr.decode(errors='replace')}")
        subprocess.run(["dpkg", "-x", os.path.join(base, debs[0]), tree + ".part"], check=True)
        os.remove(os.path.join(base, debs[0]))
        os.rename(tree + ".part", tree)
    games = os.path.join(tree, "usr", "share", "games")
    if os.path.isdir(games) and len(os.listdir(games)) == 1:
        return os.path.join(games, os.listdir(games)[0])
    return tree


def prepare_corpus(args) -> tuple[str, dict]:
    """The corpus (options of add_corpus_options) and its description; exits
    if it holds no bytes."""
    if getattr(args, "game", None):
        args.corpus = game_corpus(args.game)
    path = os.path.abspath(args.corpus) if args.corpus else default_corpus_dir(args)
    if args.corpus and os.path.isdir(path) and os.listdir(path):
        size, files = tree_bytes(path)
        log(f"using existing corpus {path}: {files} files, {size / MiB:.1f} MiB")
        corpus_info = {"path": path, "mode": "existing", "files": files, "bytes": size}
    else:
        info = bench_corpus.generate(path, args.size_gb, args.single_file_gb, args.seed,
                                     verbose=True, stream=sys.stderr)
        size, files = tree_bytes(path)
        corpus_info = {"path": path, "mode": info["mode"], "files": files, "bytes": size,
                       "seed": args.seed, "generated": info}
    if size == 0:
        raise SystemExit(f"corpus {path} is empty")
    return path, corpus_info


def add_corpus_options(ap: argparse.ArgumentParser, single_file_help: str) -> None:
    ap.add_argument("--corpus", help="corpus directory (existing and non-empty: used "
                    "as is; otherwise a corpus is generated there)")
    ap.add_argument("--size-gb", type=float, default=1.0,
                    help="size of a generated corpus in GiB (default 1.0)")
    ap.add_argument("--single-file-gb", type=float, default=0.0, help=single_file_help)
    ap.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    ap.add_argument("--game", metavar="PACKAGE", help="a real game's data instead: a Debian package "
                    "(redeclipse-data, warzone2100-data), downloaded and unpacked with dpkg -x once")


def add_run_options(ap: argparse.ArgumentParser, workdir_help: str, keep_help: str) -> None:
    """The options of every benchmark: depot's command, the temporary directory,
    the report's form and goals, the memory sampling."""
    ap.add_argument("--depot-cmd", default=None,
                    help="command that runs depot (default: 'depot' on PATH, else "
                    "'python -m cli' from the repository root)")
    ap.add_argument("--workdir", default=None, help=workdir_help)
    ap.add_argument("--keep", action="store_true", help=keep_help)
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--check", action="store_true", help="exit 1 if a goal is not met")
    ap.add_argument("--sample-interval", type=float, default=0.1,
                    help="memory sampling interval in seconds (default 0.1)")


# --------------------------------------------------------------------------
# report


def fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def mib(v) -> str:
    """Bytes as MiB with three decimals, or n/a."""
    return "n/a" if v is None else f"{v / MiB:.3f}"


def verdict(ok) -> str:
    """A goal's outcome: True, False or None (not measured)."""
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


def print_header(hdr: str) -> None:
    """A table's header line, underlined."""
    print(hdr)
    print("-" * len(hdr))


def corpus_line(c: dict) -> str:
    return f"corpus: {c['path']} ({c['mode']}, {c['files']} files, {c['bytes'] / MiB:.1f} MiB)"


def machine_line(m: dict) -> str:
    return f"machine: {m['cpus']} CPUs, {m['mem_total_mib']:.0f} MiB RAM"
