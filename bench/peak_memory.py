#!/usr/bin/env python
"""Run a Python module or script in this very process and, at its exit, write its peak resident memory (MiB) to a file.

    python bench/peak_memory.py OUT_FILE -m MODULE [ARGS...]
    python bench/peak_memory.py OUT_FILE SCRIPT.py [ARGS...]

Why not wait4's `ru_maxrss`: Linux starts a child's high-water mark from its parent's (it is carried across fork or
vfork and exec), so a small child of a big benchmark process reads the benchmark's own peak. `VmHWM` in
/proc/self/status belongs to the address space made at exec: it is this process's own peak.
"""

from __future__ import annotations

import atexit
import runpy
import sys
from pathlib import Path


def own_peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def main() -> None:
    out_file, target = Path(sys.argv[1]), sys.argv[2:]
    atexit.register(lambda: out_file.write_text(f"{own_peak_mib():.1f}\n"))
    if target[0] == "-m":
        sys.argv = [target[1], *target[2:]]
        runpy.run_module(target[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(target)
        sys.path.insert(0, str(Path(target[0]).resolve().parent))
        runpy.run_path(target[0], run_name="__main__")


if __name__ == "__main__":
    main()
