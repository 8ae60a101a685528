"""Process resource probes shared by the trainer and the benchmarks (no torch import)."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["peak_rss_bytes"]


def peak_rss_bytes() -> int | None:
    """Peak resident memory of this process in bytes, or None where it cannot be read (Windows).

    ``VmHWM`` of ``/proc/self/status`` (the high-water mark of this address space) where Linux has
    it, else ``getrusage(RUSAGE_SELF).ru_maxrss`` (macOS: bytes, elsewhere KiB). Not ``ru_maxrss``
    on Linux: it keeps the peak of the address space the process had before ``execve`` (under
    ``vfork``/``posix_spawn`` that is the parent's), so a child spawned by a parent that held 2 GB
    reported 2 GB (measured in ``benchmarks/bench_data.py``).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
