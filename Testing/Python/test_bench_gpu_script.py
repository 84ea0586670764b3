"""bench/bench_gpu.py, the GPU figures' script, run for real in a child process: on a machine without a GPU it must say
so and stop (exit 0, no figures), and with --smoke-on-cpu run its fp32 and SCT off-device variants with the demo
model on the 64x320x320 0.8 mm phantom, so the script is known to work before a GPU machine is lent to run it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "bench" / "bench_gpu.py"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_without_a_gpu_the_script_measures_nothing_and_says_so(tmp_path):
    if _has_cuda():
        pytest.skip("this machine has a CUDA GPU: the script would measure it")
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--case", "demo", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "NO CUDA GPU IS PRESENT" in done.stdout and "GPU figures NOT measured" in done.stdout
    assert not out.exists()


@pytest.mark.slow  # about 40 s: two nnU-Net predictions of 40 tiles each on the CPU, after a warm-up each
def test_smoke_on_cpu_runs_both_host_variants_and_they_agree(tmp_path):
    if _has_cuda():
        pytest.skip("this machine has a CUDA GPU: run the script itself for GPU figures")
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--case", "demo", "--smoke-on-cpu", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "NOT measured here" in done.stdout
    figures = json.loads(out.read_text())
    assert figures["device"] == "cpu" and figures["case"] == "demo"
    assert set(figures["variants"]) == {"fp32", "sct-off-device"}
    for variant in figures["variants"].values():
        assert len(variant["seconds"]) == 1 and variant["seconds"][0] > 0 and variant["peak_gpu_mib"] is None
        assert min(variant["dice_vs_fp32"].values()) == 1.0  # on the host both variants are the same computation
        assert min(variant["dice_vs_truth"].values()) >= 0.8  # the demo model on the held-out phantom (seed 1000)
