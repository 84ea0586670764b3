"""Helpers for the hardening tests (issue 8): run `rootletseg` as a real process, check the failure promise (one
sentence, non-zero exit, no traceback) and that nothing was written or changed (a snapshot of a folder tree)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

REPO = Path(__file__).resolve().parents[2]


def environment(extra: Optional[dict] = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("ROOTLETSEG_TRUST_CHECKPOINTS", None)
    env.update(extra or {})
    return env


def cli(*args, env: Optional[dict] = None, timeout: float = 300, cwd=None) -> subprocess.CompletedProcess:
    """`python -m RootletSegLogic ARGS` in a real process."""
    return subprocess.run([sys.executable, "-m", "RootletSegLogic", *map(str, args)], cwd=cwd or REPO,
                          env=environment(env), capture_output=True, text=True, timeout=timeout)


_SIGTERM_AFTER_NTH_CALL = r"""
import os, signal, sys
name, at = sys.argv[1], int(sys.argv[2])
real = getattr(os, name)
count = [0]
def patched(*args, **kwargs):
    real(*args, **kwargs)
    count[0] += 1
    if count[0] == at:
        os.kill(os.getpid(), signal.SIGTERM)
setattr(os, name, patched)
from RootletSegLogic.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


def cli_with_sigterm_after(os_function: str, at: int, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    """`rootletseg ARGS` in a real process that sends itself SIGTERM right after its `at`-th call of
    `os.<os_function>` (os.rename / os.replace: a signal in the middle of a commit or an install swap)."""
    return subprocess.run([sys.executable, "-c", _SIGTERM_AFTER_NTH_CALL, os_function, str(at), *map(str, args)],
                          env=environment(), capture_output=True, text=True, timeout=timeout)


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The promise for a refused command: non-zero exit, no traceback, exactly one error line ending the output,
    one sentence (ends with '.'), containing each fragment (case-insensitive). Returns the sentence."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("rootletseg: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    sentence = errors[0][len("rootletseg: error: "):]
    assert sentence.endswith("."), sentence
    for fragment in fragments:
        assert fragment.lower() in sentence.lower(), sentence
    return sentence


def snapshot(folder: Path) -> Dict[str, tuple]:
    """Every entry under `folder` (hidden ones included): relative path -> (kind, size, sha256 or link target)."""
    state = {}
    folder = Path(folder)
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            state[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            state[rel] = ("dir",)
        else:
            data = path.read_bytes()
            state[rel] = ("file", len(data), hashlib.sha256(data).hexdigest())
    return state
