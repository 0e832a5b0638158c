"""Where a run happened: the figures mean little without the machine and versions behind them."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import gcache

__all__ = ["Machine", "describe_machine"]


@dataclass(frozen=True, slots=True)
class Machine:
    """Interpreter, hardware and the versions of what was measured."""

    python_version: str
    python_implementation: str
    platform: str
    cpu_model: str
    """The CPU as the kernel names it (``model name`` in ``/proc/cpuinfo``), or ``unknown``: the
    virtual machines this project is measured on differ from session to session."""
    cpu_count: int | None
    """Logical CPUs of the machine."""
    usable_cpus: int | None
    """CPUs this process may run on (fewer than ``cpu_count`` in a restricted container)."""
    redis_server: str
    redis_py: str
    reply_parser: str
    """redis-py's reply parser: ``hiredis X`` (C, the optional ``gcache[hiredis]`` extra) or
    ``pure Python``. Every Redis figure depends on it."""
    gcache: str
    gcache_source: str
    """Digest of the gcache sources on disk as the run starts (moments after they were imported):
    two runs with the same digest measured the same code, whatever the version number says."""
    git_revision: str
    """``HEAD`` of the checkout, with ``-dirty`` when gcache has uncommitted changes."""
    load_average_1m: float | None
    """System load over the minute before the run: well above 0 means other work shared the
    CPUs with the benchmark, and the figures are noisier (and slower) than they should be."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        """Two lines for the report header: the machine, then the versions measured."""
        cpus = self.usable_cpus if self.usable_cpus is not None else self.cpu_count
        load = "unknown" if self.load_average_1m is None else f"{self.load_average_1m:.2f}"
        return (
            f"{self.python_implementation} {self.python_version} on {self.platform}, "
            f"{cpus} CPUs ({self.cpu_model}), load average {load} before the run\n"
            f"gcache {self.gcache} (source {self.gcache_source}, git {self.git_revision}); "
            f"redis-server {self.redis_server}; redis-py {self.redis_py} "
            f"({self.reply_parser} reply parser)"
        )


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:  # e.g. gcache run from a checkout without being installed
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                name, _, value = line.partition(":")
                if name.strip() == "model name":
                    return value.strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or "unknown"


def _reply_parser() -> str:
    hiredis = _package_version("hiredis")
    return "pure Python" if hiredis == "unknown" else f"hiredis {hiredis}"


def _source_digest(package_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(package_dir.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _git_revision(package_dir: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=package_dir, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout
        return "unknown"
    return f"{head}-dirty" if dirty else head


def describe_machine(redis_server_version: str) -> Machine:
    """Describe this interpreter and machine; the server's version comes from its INFO.

    Call it just before the timed run, so the load average describes the conditions it ran in."""
    package_dir = Path(gcache.__file__).parent
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return Machine(
        python_version=platform.python_version(),
        python_implementation=platform.python_implementation(),
        platform=platform.platform(),
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count(),
        usable_cpus=usable,
        redis_server=redis_server_version,
        redis_py=_package_version("redis"),
        reply_parser=_reply_parser(),
        gcache=_package_version("gcache"),
        gcache_source=_source_digest(package_dir),
        git_revision=_git_revision(package_dir),
        load_average_1m=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    )
