"""repair: verify a game directory in full, then fix exactly what is missing or damaged.

A damaged file's intact chunks are read back from the file itself; only the chunks that
are gone or wrong are downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.progress import Progress, ignore
from .fetch import Fetcher
from .install import InstallResult, install
from .verify import VerifyReport, verify


@dataclass(frozen=True)
class RepairResult:
    before: VerifyReport
    install: InstallResult | None
    after: VerifyReport

    def to_dict(self) -> dict:
        return {
            "before": self.before.to_dict(),
            "repaired": sorted(self.before.broken()),
            "install": self.install.to_dict() if self.install else None,
            "after": self.after.to_dict(),
        }


def repair(fetcher: Fetcher, dest: Path, seeds=(), jobs: int = 8, progress: Progress = ignore,
           on_total: Progress = ignore) -> RepairResult:
    before = verify(dest)
    result = None
    if not before.intact:
        result = install(fetcher, before.product, before.version, Path(dest), seeds=seeds, jobs=jobs,
                         only=before.broken(), progress=progress, on_total=on_total)
    return RepairResult(before, result, verify(dest) if result else before)
