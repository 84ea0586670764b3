"""`rootletseg batch` on Dask engines other than its own local cluster: a real `dask scheduler` and two
`dask worker` processes on 127.0.0.1 used by address, one of them killed while it runs an image (its image must be
retried on the other), and the SLURM job script dask-jobqueue generates (no SLURM here: its content only)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from RootletSegLogic.cohort.phantom_bids import write_phantom_bids

BIN = Path(sys.executable).parent


def _status(out: Path) -> dict:
    with open(out / "rootletseg_status.tsv", newline="", encoding="utf-8") as handle:
        return {row["participant_id"]: row for row in csv.DictReader(handle, delimiter="\t")}


@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and two single-thread workers (no nanny: a killed worker stays dead), on 127.0.0.1."""
    scheduler_file = tmp_path / "scheduler.json"
    processes = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    env = dict(os.environ, ROOTLETSEG_HOME=str(tmp_path / "home"))
    workers = [subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-nanny",
                                 "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) for i in range(2)]
    processes += workers
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
    try:
        yield address, workers
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.slow  # about 40 s: a scheduler, two workers, four images
def test_existing_scheduler_and_a_killed_worker(tmp_path, dask_cluster):
    address, workers = dask_cluster
    root, out = tmp_path / "bids", tmp_path / "out"
    write_phantom_bids(root, subjects=4)
    env = dict(os.environ, ROOTLETSEG_HOME=str(tmp_path / "home"))
    batch = subprocess.Popen([sys.executable, "-m", "RootletSegLogic", "batch", str(root), "-o", str(out),
                              "--model", "demo", "--dask-scheduler", address, "--progress", "none"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    from distributed import Client

    killed = None
    try:
        with Client(address, timeout="30s") as client:
            pids = client.run(os.getpid)  # worker address -> pid
            deadline = time.monotonic() + 120
            while killed is None and time.monotonic() < deadline and batch.poll() is None:
                for worker_address, keys in client.processing().items():
                    if any(str(key).startswith("rootletseg-") for key in keys):
                        victim = next(w for w in workers if w.pid == pids[worker_address])
                        victim.kill()  # SIGKILL while it runs an image: the image must be retried elsewhere
                        killed = (worker_address, [str(k) for k in keys])
                        break
                time.sleep(0.1)
        stdout, stderr = batch.communicate(timeout=300)
    finally:
        if batch.poll() is None:
            batch.kill()
    assert killed is not None, "no worker was seen running an image"
    assert batch.returncode == 0, stderr
    status = _status(out)
    assert [row["status"] for row in status.values()] == ["done"] * 4
    killed_image = killed[1][0].split("-", 2)[2]  # rootletseg-<index>-<stem>
    assert (out / killed_image.split("_")[0] / "anat" / f"{killed_image}_rootletseg-batch.json").is_file()
    assert "n_done: 4" in stdout


def test_no_scheduler_at_the_address_is_one_sentence(tmp_path):
    root = tmp_path / "bids"
    write_phantom_bids(root, subjects=1)
    env = dict(os.environ, ROOTLETSEG_HOME=str(tmp_path / "home"))
    result = subprocess.run([sys.executable, "-m", "RootletSegLogic", "batch", str(root), "-o", str(tmp_path / "o"),
                             "--model", "demo", "--dask-scheduler", "tcp://127.0.0.1:9", "--progress", "none"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1 and "No Dask scheduler answered at tcp://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_slurm_job_script(tmp_path):
    root = tmp_path / "bids"
    write_phantom_bids(root, subjects=1)
    result = subprocess.run(
        [sys.executable, "-m", "RootletSegLogic", "batch", str(root), "-o", str(tmp_path / "o"), "--slurm",
         "--slurm-queue", "gpu", "--slurm-account", "def-lab", "--slurm-cores", "8", "--slurm-memory", "32GB",
         "--slurm-walltime", "04:00:00", "--slurm-gpus", "1", "--slurm-job-extra=--qos=normal",
         "--slurm-print-script"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    script = result.stdout
    for line in ("#SBATCH -p gpu", "#SBATCH -A def-lab", "#SBATCH --cpus-per-task=8", "#SBATCH -t 04:00:00",
                 "#SBATCH --gres=gpu:1", "#SBATCH --qos=normal", "#SBATCH -J rootletseg"):
        assert line in script.splitlines(), (line, script)
    assert any(line.startswith("#SBATCH --mem=") for line in script.splitlines())
    worker = next(line for line in script.splitlines() if "dask_worker" in line or "dask worker" in line)
    assert "--nthreads 1" in worker  # one image at a time per job; PyTorch gets the job's 8 CPUs
    assert not (tmp_path / "o").exists()  # printing the script writes nothing
