"""The benchmarks' harness: peers, measured runs, rows, ratios and tables.

Each ``bench_*`` script says what it compares and takes the rest from here.
psutil is imported only where something is measured: ``release_pairs.py`` runs without it.
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
from pathlib import Path

import bench_corpus
from pipeline.core.hashing import sha256_file

MiB = 1 << 20

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.append(REPO_ROOT)  # depot_testing/ (servers, fixtures) is not installed: take it from the checkout

# depot's default chunk sizes; casync gets the same, so that the stores compare
CHUNK_MIN = 256 * 1024
CHUNK_AVG = 1024 * 1024
CHUNK_MAX = 4 * 1024 * 1024

TIME_BINARY = "/usr/bin/time"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def remove_workdir(workdir: str, keep: bool) -> None:
    if keep:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


# peer tools and the machine


def ensure_tools(tools: dict[str, str]) -> None:
    """Install the Debian packages of the missing tools ({binary: package}); exit if that fails."""
    from depot_testing.debian import ensure_binaries

    try:
        ensure_binaries(tools)
    except RuntimeError as e:
        raise SystemExit(f"could not install the tools {' '.join(tools)}: {e}")


def time_binary() -> str | None:
    """GNU time, for the exact peak RSS of the largest process (wait4 cannot give it: a
    forked child starts with this process's resident set, kept across exec)."""
    return TIME_BINARY if os.access(TIME_BINARY, os.X_OK) else None


def ensure_time_binary() -> None:
    try:
        ensure_tools({TIME_BINARY: "time"})
    except SystemExit as e:
        log(f"{e}; the largest single-process RSS will be sampled only")


def tool_version(cmd: list[str]) -> str:
    """The first line a tool prints about its version, or ""."""
    try:
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        lines = res.stdout.decode(errors="replace").strip().splitlines()
        return lines[0].strip() if lines else ""
    except Exception:
        return ""


def machine_info() -> dict:
    import psutil

    return {"cpus": os.cpu_count(), "mem_total_mib": psutil.virtual_memory().total / MiB,
            "python": platform.python_version()}


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


def on_tmpfs(path: str) -> bool:
    """Whether path is on tmpfs (in memory): the mount point of the longest prefix decides."""
    path, best, fstype = os.path.realpath(path), "", ""
    with open("/proc/mounts") as f:
        for line in f:
            _, mount, kind = line.split()[:3]
            if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                best, fstype = mount, kind
    return fstype == "tmpfs"


def disk_usage(*paths: str) -> int:
    """What ``du`` counts for paths: whole blocks, directories included."""
    out = subprocess.run(["du", "-scB1", *paths], stdout=subprocess.PIPE, check=True).stdout
    return int(out.split()[-2])


def depot_documents(repo: str) -> dict[str, int]:
    """{relative path: size} of what a depot repository holds besides chunks: the manifests,
    inventories and settings."""
    out = {}
    for d, dirs, files in os.walk(repo):
        if d == repo:
            dirs[:] = [name for name in dirs if name != "chunks"]
        out.update((os.path.relpath(os.path.join(d, fn), repo), os.path.getsize(os.path.join(d, fn)))
                   for fn in files)
    return out


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


def hash_tree(root: str, entries: dict[str, tuple], pool, digest=sha256_file) -> dict[str, str]:
    """The digest of every regular file of entries, on pool's threads."""
    files = list(regular_files(entries))
    files.sort(key=lambda rel: -entries[rel][1])  # largest first: no big file left for the end
    return dict(zip(files, pool.map(lambda rel: digest(os.path.join(root, *rel.split("/"))), files)))


def mismatch(ref: dict, got: dict, differ: list[dict], checked: int, limit: int = 20) -> dict:
    """What a comparison found: keys missing and extra, entries that differ."""
    missing = sorted(set(ref) - set(got))
    extra = sorted(set(got) - set(ref))
    differ.sort(key=lambda d: d["path"])
    return {"ok": not (missing or extra or differ), "files_checked": checked,
            "missing": len(missing), "extra": len(extra), "different": len(differ),
            "missing_paths": missing[:limit], "extra_paths": extra[:limit],
            "different_paths": differ[:limit]}


def compare_trees(ref: dict[str, tuple], ref_hashes: dict[str, str], dest: str,
                  pool, ignore_top: tuple[str, ...] = (), limit: int = 20) -> dict:
    """dest against the reference; what is under a top-level directory named in ignore_top
    (a tool's own state, such as depot's ``.depot/``) is left out."""
    got = scan_tree(dest)
    ignored = sorted(rel for rel in got if rel.split("/", 1)[0] in ignore_top and rel not in ref)
    for rel in ignored:
        del got[rel]
    differ, same = [], []
    for rel in sorted(set(ref) & set(got)):
        if ref[rel] != got[rel]:
            differ.append({"path": rel, "expected": list(ref[rel]), "got": list(got[rel])})
        elif ref[rel][0] == "file":
            same.append(rel)
    hashes = hash_tree(dest, {rel: got[rel] for rel in same}, pool)
    differ += [{"path": rel, "expected": ref_hashes[rel], "got": hashes[rel]}
               for rel in same if hashes[rel] != ref_hashes[rel]]
    out = mismatch(ref, got, differ, len(hashes), limit)
    out.update(bytes_checked=sum(got[rel][1] for rel in same), ignored=ignored[:limit],
               ignored_count=len(ignored))
    return out


# measurement


class TreeSampler(threading.Thread):
    """Samples the summed RSS and PSS of a process and its descendants.

    With ``skip_root`` the root itself (a ``/usr/bin/time`` wrapper) is not counted."""

    def __init__(self, pid: int, interval: float, skip_root: bool = False):
        super().__init__(daemon=True)
        self.pid, self.interval, self.skip_root = pid, interval, skip_root
        self.stop_event = threading.Event()
        self.peak_rss = self.peak_pss = self.max_single_rss = self.max_procs = self.samples = 0
        self.pss_ok = True
        self._procs: dict = {}  # pid -> psutil.Process: cheaper, and safe from pid reuse

    def _tree(self) -> list:
        import psutil

        try:
            root = self._procs.get(self.pid) or psutil.Process(self.pid)
            self._procs[self.pid] = root
            kids = root.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return []
        return ([] if self.skip_root else [root]) + [self._procs.setdefault(k.pid, k) for k in kids]

    def sample(self) -> None:
        import psutil

        rss = pss = 0
        procs = self._tree()
        for p in procs:
            try:
                try:
                    mi = p.memory_full_info() if self.pss_ok else p.memory_info()
                except psutil.AccessDenied:
                    self.pss_ok, mi = False, p.memory_info()
                one, one_pss = mi.rss, getattr(mi, "pss", mi.rss)
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
    """Run cmd: its wall time, exit code, memory peaks, CPU, stdout and stderr."""
    out_path, err_path, time_path = (os.path.join(workdir, f"{name}.{ext}")
                                     for ext in ("stdout", "stderr", "maxrss"))
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
    stdout, stderr = (Path(p).read_bytes().decode(errors="replace") for p in (out_path, err_path))
    max_single, exact = sampler.max_single_rss, False
    if timebin:
        try:
            with open(time_path) as f:
                max_single = int(f.read().split()[-1]) * 1024  # KiB
            exact = True
        except (OSError, ValueError, IndexError):
            pass
    return {"returncode": proc.returncode, "seconds": wall,
            # the tree's peak is at least the peak of its largest process
            "peak_rss_bytes": max(sampler.peak_rss, max_single), "peak_rss_sampled_bytes": sampler.peak_rss,
            "peak_pss_bytes": sampler.peak_pss if sampler.pss_ok else None,
            "max_process_rss_bytes": max_single, "max_process_rss_exact": exact,
            "max_processes": sampler.max_procs, "samples": sampler.samples,
            "cpu_user_s": round(usage.ru_utime, 3), "cpu_sys_s": round(usage.ru_stime, 3),
            "free_mib_before": free_before, "stdout": stdout, "stderr": stderr}


def profile_run(name: str, cmd: list[str], workdir: str, cwd: str | None = None, env: dict | None = None) -> dict:
    """Where cmd's time goes: py-spy's samples of every thread over one more run, untimed
    (apilib.summarize_profile: the busiest functions, inclusive and own)."""
    import apilib

    spy, out = apilib.py_spy(), os.path.join(workdir, f"{name}.profile")
    if spy is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    log(f"profiling {name}: {shlex.join(cmd)}")
    res = subprocess.run([spy, "record", "--rate", "250", "--full-filenames", "--format", "raw", "--output", out,
                          "--", *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if res.returncode != 0 or not os.path.exists(out):
        return {"skipped": f"py-spy failed: {res.stderr.strip()[-500:]}"}
    return apilib.summarize_profile(Path(out).read_text(), None)


def busy_cpu_seconds(t0, t1) -> float:
    """CPU seconds the whole machine was busy between two psutil.cpu_times() readings."""
    skip = ("idle", "iowait", "guest", "guest_nice")  # guest time is inside user
    return round(sum(getattr(t1, f) - getattr(t0, f) for f in t1._fields if f not in skip), 3)


def timed_run(name: str, cmd: list[str], workdir: str, interval: float,
              cwd: str | None = None, env: dict | None = None) -> dict:
    """run_measured between two syncs (the one after timed apart), with the CPU that this
    script (``own_cpu_s``) and the rest of the machine (``other_cpu_s``) used meanwhile."""
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
    """A note for each row during which other load took more than a tenth of the CPUs."""
    ncpu = os.cpu_count() or 1
    return [f"during {row['tool']} other processes kept the machine busy "
            f"({row['other_cpu_s']:.1f} CPU-s of {ncpu * row['seconds']:.1f} available): "
            f"its figures are noisy, repeat the benchmark on an idle machine"
            for row in rows if row.get("other_cpu_s") is not None and row.get("seconds")
            and row["other_cpu_s"] > 0.1 * ncpu * row["seconds"]]


def free_memory_mib() -> int:
    """Free memory: on this virtual machine a first write into it costs more (the host
    backs each page on first touch), so each run records it."""
    import psutil

    return round(psutil.virtual_memory().free / MiB)


def summarize(name: str, res: dict, corpus_bytes: int, stored: int | None, **extra) -> dict:
    """A report row of a run_measured result over the corpus."""
    sec = res["seconds"]
    in_mib = lambda v: None if v is None else round(v / MiB, 1)  # noqa: E731
    return {"tool": name, "seconds": round(sec, 3),
            "mib_per_s": round(corpus_bytes / MiB / sec, 2) if sec > 0 else None,
            "stored_bytes": stored, "stored_mib": None if stored is None else round(stored / MiB, 2),
            "peak_rss_mib": in_mib(res["peak_rss_bytes"]), "peak_pss_mib": in_mib(res.get("peak_pss_bytes")),
            "max_process_rss_mib": in_mib(res["max_process_rss_bytes"]), "max_processes": res["max_processes"],
            "cpu_user_s": res["cpu_user_s"], "cpu_sys_s": res["cpu_sys_s"],
            "free_mib_before": res.get("free_mib_before"), **extra}


def timed_row(name: str, res: dict, nbytes: int, **extra) -> dict:
    """A report row of a timed_run result: nothing stored, the sync after and the other load."""
    row = summarize(name, res, nbytes, None, **extra)
    del row["stored_bytes"], row["stored_mib"]
    row.update(sync_after_s=res.get("sync_after_s"), other_cpu_s=res.get("other_cpu_s"))
    return row


def throughput_ratio(a: dict, b: dict) -> float:
    return round(a["mib_per_s"] / b["mib_per_s"], 3)


def failure(step: str, cmd: list[str], res: dict) -> dict:
    """A failed step, for the report and the log."""
    return {"step": step, "command": shlex.join(cmd), "returncode": res.get("returncode"),
            "error": res.get("error"), "stdout": res.get("stdout", ""),
            "stderr": res.get("stderr", "")}


def log_failure(failed: dict) -> None:
    log(f"{failed['step']} failed (exit {failed['returncode']}): {failed.get('command')}")
    for stream in ("error", "stderr", "stdout"):
        if (failed.get(stream) or "").strip():
            log(f"--- {stream} ---")
            log(failed[stream].rstrip())


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
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return [sys.executable, "-m", "cli"], REPO_ROOT, env


_HELP: dict[tuple, str | None] = {}


def option_listed(base: list[str], sub: str, option: str, cwd: str | None,
                  env: dict | None, default: bool = False) -> bool:
    """Whether ``depot SUB --help`` lists option; default if the help cannot run."""
    key = (*base, sub)
    if key not in _HELP:
        try:
            res = subprocess.run(base + [sub, "--help"], cwd=cwd, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            _HELP[key] = res.stdout.decode(errors="replace")
        except (OSError, subprocess.TimeoutExpired):
            _HELP[key] = None
    return default if _HELP[key] is None else option in _HELP[key]


def parse_json_output(text: str) -> dict | None:
    """The JSON object depot printed: the whole stdout, else its last object."""
    lines = text.strip().splitlines()
    candidates = ["\n".join(lines)]
    for i in reversed(range(len(lines))):
        if lines[i].startswith("{"):
            candidates += [lines[i], "\n".join(lines[i:])]
    for candidate in candidates:
        try:
            obj = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def run_depot(corpus: str, workdir: str, interval: float, workers: int | None,
              depot_cmd: str | None) -> tuple[dict, list[str], dict | None, str]:
    """``depot run`` of the corpus into a new repository: (result, command, JSON, repository)."""
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


def depot_install_command(depot_cmd: str | None, origin: str, dest: str, jobs: int | None = None,
                          workers: int | None = None) -> list[str]:
    """``depot install`` of the benchmark's version (unsigned) from origin into dest."""
    base, cwd, env = depot_base_command(depot_cmd)
    glob = ["--json"]
    sub = ["install", "--origin", origin, "--product", "bench", "--version", "1", "--dest", dest]
    if option_listed(base, "install", "--allow-unsigned", cwd, env):
        sub.insert(1, "--allow-unsigned")  # the benchmark repository is not signed
    if jobs:
        sub += ["--jobs", str(jobs)]
    if workers:
        (sub if option_listed(base, "install", "--workers", cwd, env) else glob).extend(["--workers", str(workers)])
    return base + glob + sub


def depot_stored_bytes(repo: str, summary: dict | None = None) -> tuple[int, int | None, str]:
    """(bytes, chunk files, source) depot stored: REPO/chunks, else the JSON's
    stored_bytes, else the whole repository."""
    chunks_dir = os.path.join(repo, "chunks")
    if os.path.isdir(chunks_dir):
        return (*tree_bytes(chunks_dir), "measured REPO/chunks")
    if summary and isinstance(summary.get("stored_bytes"), int):
        return summary["stored_bytes"], None, "depot JSON stored_bytes"
    return (*tree_bytes(repo), "measured whole repo")


def run_casync(corpus: str, workdir: str, interval: float) -> tuple[dict, list[str], str, str]:
    """casync make with depot's chunk sizes: (result, command, store, index)."""
    store = os.path.join(workdir, "casync-store")
    index = os.path.join(workdir, "casync.caidx")
    cmd = ["casync", "make", f"--store={store}",
           f"--chunk-size={CHUNK_MIN}:{CHUNK_AVG}:{CHUNK_MAX}", "--compression=zstd", index, corpus]
    res = run_measured("casync", cmd, workdir, interval)
    if res["returncode"] != 0:
        raise SystemExit(f"casync failed (exit {res['returncode']}):\n{res['stderr']}")
    return res, cmd, store, index


# corpus and options


def default_corpus_dir(args) -> str:
    base = os.path.join(tempfile.gettempdir(), "depot-bench-corpus")
    if args.small_files:
        return os.path.join(base, f"small-{args.small_files}x{args.max_file_size}-seed{args.seed}")
    if args.single_file_gb and args.single_file_gb > 0:
        return os.path.join(base, f"single-{args.single_file_gb:g}gib-seed{args.seed}")
    return os.path.join(base, f"tree-{args.size_gb:g}gib-seed{args.seed}")


def game_corpus(package: str) -> str:
    """A real game's data: Debian's ``package`` unpacked with ``dpkg -x`` once, under
    ``$TMPDIR/depot-bench-games/``; its ``usr/share/games/<name>`` when there is one."""
    base = os.path.join(tempfile.gettempdir(), "depot-bench-games", package)
    tree = os.path.join(base, "tree")
    if not os.path.isdir(tree):
        os.makedirs(base, exist_ok=True)
        from depot_testing.debian import apt_get

        log(f"downloading and unpacking Debian's {package} ...")
        got = apt_get("download", package, cwd=base)
        debs = [f for f in os.listdir(base) if f.endswith(".deb")]
        if got.returncode != 0 or not debs:
            raise SystemExit(f"apt-get download {package} failed: {got.stderr}")
        subprocess.run(["dpkg", "-x", os.path.join(base, debs[0]), tree + ".part"], check=True)
        os.remove(os.path.join(base, debs[0]))
        os.rename(tree + ".part", tree)
    games = os.path.join(tree, "usr", "share", "games")
    if os.path.isdir(games) and len(os.listdir(games)) == 1:
        return os.path.join(games, os.listdir(games)[0])
    return tree


def prepare_corpus(args) -> tuple[str, dict]:
    """The corpus the options name, and its description; exits if it is empty."""
    if getattr(args, "game", None):
        args.corpus = game_corpus(args.game)
    path = os.path.abspath(args.corpus) if args.corpus else default_corpus_dir(args)
    if args.corpus and os.path.isdir(path) and os.listdir(path):
        size, files = tree_bytes(path)
        log(f"using existing corpus {path}: {files} files, {size / MiB:.1f} MiB")
        corpus_info = {"path": path, "mode": "existing", "files": files, "bytes": size}
    else:
        info = bench_corpus.generate_from(args, path, stream=sys.stderr)
        size, files = tree_bytes(path)
        corpus_info = {"path": path, "mode": info["mode"], "files": files, "bytes": size,
                       "seed": args.seed, "generated": info}
    if size == 0:
        raise SystemExit(f"corpus {path} is empty")
    return path, corpus_info


def add_corpus_options(ap: argparse.ArgumentParser,
                       single_file_help: str = "generate a single-file corpus of this many GiB instead") -> None:
    ap.add_argument("--corpus", help="corpus directory (existing and non-empty: used "
                    "as is; otherwise a corpus is generated there)")
    bench_corpus.add_options(ap, single_file_help)
    ap.add_argument("--game", metavar="PACKAGE", help="a real game's data instead: a Debian package "
                    "(redeclipse-data, warzone2100-data), downloaded and unpacked with dpkg -x once")


def add_run_options(ap: argparse.ArgumentParser, workdir_help: str, keep_help: str,
                    check_help: str = "exit 1 if a goal is not met", sampling: bool = True) -> None:
    """The options of every benchmark: depot's command, the working directory, the report."""
    ap.add_argument("--depot-cmd", default=None,
                    help="command that runs depot (default: 'depot' on PATH, else "
                    "'python -m cli' from the repository root)")
    ap.add_argument("--workdir", "--dir", default=None, help=workdir_help + "; /dev/shm: on tmpfs")
    ap.add_argument("--keep", action="store_true", help=keep_help)
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--check", action="store_true", help=check_help)
    if sampling:
        ap.add_argument("--sample-interval", type=float, default=0.1,
                        help="memory sampling interval in seconds (default 0.1)")


# the report


def fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def mib(v) -> str:
    """Bytes as MiB with three decimals, or n/a."""
    return "n/a" if v is None else f"{v / MiB:.3f}"


def verdict(ok) -> str:
    """A goal's outcome: True, False or None (not measured)."""
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


OPERATORS = {">=": float.__ge__, "<=": float.__le__, "<": float.__lt__}


def judge(goals: dict[str, tuple[str, float]], figures: dict) -> dict[str, bool | None]:
    """Each goal, {figure: (operator, threshold)}, judged on figures (None: not measured)."""
    return {key: None if figures.get(key) is None else OPERATORS[op](float(figures[key]), threshold)
            for key, (op, threshold) in goals.items()}


def print_figures(labels: dict[str, str], figures: dict, goals: dict[str, tuple[str, float]]) -> None:
    """A line for each figure in labels: its value, and its goal and verdict where it has one."""
    judged = judge(goals, figures)
    for key, label in labels.items():
        v = figures.get(key)
        line = f"{label}: {fmt(v, '.2f' if v is not None and abs(v) < 100 else '.0f')}"
        if key in goals:
            line += f" -- goal {goals[key][0]} {goals[key][1]:g}: {verdict(judged[key])}"
        print(line)


def print_header(hdr: str) -> None:
    print(hdr)
    print("-" * len(hdr))


def col(header: str, width: int, key: str, spec: str = "") -> tuple:
    """A table column showing row[key] formatted with spec (n/a when missing)."""
    return header, width, lambda row: fmt(row.get(key), spec)


CPU = ("CPU user+sys", 13, lambda row: f"{row['cpu_user_s']:>6.2f}+{row['cpu_sys_s']:<6.2f}")


def print_table(columns: list[tuple], rows: list[dict]) -> None:
    """A table: the first column left-aligned, the others right-aligned."""
    def line(cells):
        return " ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, (_, w, _)) in enumerate(zip(cells, columns)))
    print_header(line([header for header, _, _ in columns]))
    for row in rows:
        print(line([cell(row) for _, _, cell in columns]))


def print_mismatches(verification: dict, matches: bool = False) -> None:
    """What each failed comparison found; with ``matches`` a line for each that matched."""
    for key, v in verification.items():
        if v["ok"]:
            if matches:
                print(f"verified {key}: {v['files_checked']} objects match the repository")
            continue
        print(f"MISMATCH {key}: {v['missing']} missing, {v['extra']} extra, {v['different']} different")
        for what in ("missing", "extra"):
            for p in v[f"{what}_paths"]:
                print(f"  {what}: {p}")
        for d in v["different_paths"]:
            print(f"  different: {d['path']} (expected {d['expected']}, got {d['got']})")


def corpus_line(c: dict) -> str:
    return f"corpus: {c['path']} ({c['mode']}, {c['files']} files, {c['bytes'] / MiB:.1f} MiB)"


def machine_line(m: dict) -> str:
    return f"machine: {m['cpus']} CPUs, {m['mem_total_mib']:.0f} MiB RAM"


def show(report: dict, args, print_report) -> None:
    """The report as tables (``print_report``), or as JSON with ``--json``."""
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_report(report)


def finish(report: dict, args, print_report, failures: tuple[str, ...] = (),
           against: str = "the corpus") -> int:
    """Print the report (or its JSON), log what failed, and return the exit status: 2 when
    depot failed, 1 when a step in ``failures`` failed, a comparison did not match, or
    (with ``--check``) a goal was missed."""
    show(report, args, print_report)
    failed = [report[k] for k in failures if report.get(k)]
    for f in failed:
        log_failure(f) if isinstance(f, dict) else log(f)
    mismatched = [k for k, v in report.get("verification", {}).items() if not v["ok"]]
    if mismatched:
        log(f"MISMATCH: {', '.join(mismatched)} differ from {against}")
    if report.get("depot_error"):
        log_failure(report["depot_error"])
        return 2
    if failed or mismatched:
        return 1
    return 1 if args.check and any(v is False for v in report.get("goals", {}).values()) else 0
