"""Process metrics that need no library: resident memory from /proc."""

from __future__ import annotations

import os
import resource


def rss_bytes() -> int:
    """Current resident set size (falls back to the peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
