"""Where a record came from: package and library versions, git commit, hardware, and the time."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
import sys
from pathlib import Path

import dparena


def now() -> str:
    """The current UTC time, to the second (ISO 8601), as records store it."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def provenance() -> dict[str, str]:
    """Package and library versions, git commit and hardware of this process."""
    return dict(_provenance())


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def _provenance() -> dict[str, str]:
    from importlib import metadata

    info = {"dparena": dparena.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu": _cpu_model(), "cpus": str(os.cpu_count())}
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        info["gpu"] = sys.modules["torch"].cuda.get_device_name(0)
    for pkg in ("numpy", "pandas", "scikit-learn", "xgboost-cpu", "xgboost", "torch", "opacus"):
        try:
            info[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    try:
        root = Path(dparena.__file__).resolve().parent.parent
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            info["git"] = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info
