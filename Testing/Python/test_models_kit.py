"""Shared helpers for the model-registry tests: small but valid nnU-Net v2 model folders, zips (good and hostile),
a real HTTP server on 127.0.0.1, and cache listings. Holds no tests itself."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple, Union

TRAINER = "nnUNetTrainer__nnUNetPlans__3d_fullres"


def make_model_dir(root: Path, folds: Iterable[Union[int, str]] = (0,), trainer: str = TRAINER,
                   max_label: int = 9) -> Path:
    """root/<trainer>/{dataset.json, plans.json, fold_N/checkpoint_final.pth (torch.save of a small dict)}."""
    import torch

    trainer_dir = Path(root) / trainer
    trainer_dir.mkdir(parents=True)
    labels = {"background": 0, **{f"lvl{v}": v for v in range(1, max_label + 1)}}  # nnU-Net: consecutive
    (trainer_dir / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "T2w"}, "labels": labels, "numTraining": 2, "file_ending": ".nii.gz",
    }))
    (trainer_dir / "plans.json").write_text(json.dumps({
        "dataset_name": "Dataset999_Test", "plans_name": "nnUNetPlans",
        "configurations": {"3d_fullres": {"patch_size": [32, 32, 32], "spacing": [1.0, 1.0, 1.0]}},
    }))
    for fold in folds:
        fold_dir = trainer_dir / f"fold_{fold}"
        fold_dir.mkdir()
        torch.save({"network_weights": {"w": torch.arange(4.0) + (0 if fold == "all" else int(fold))},
                    "trainer_name": "nnUNetTrainer"}, fold_dir / "checkpoint_final.pth")
    return trainer_dir


def zip_folder(folder: Path, zip_path: Path, wrapper: Optional[str] = None,
               extra: Iterable[Tuple[Union[str, zipfile.ZipInfo], bytes]] = ()) -> Path:
    """Zip the *contents* of `folder` (at the zip root, or inside `wrapper/`), plus raw `extra` entries."""
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(Path(folder).rglob("*")):
            name = path.relative_to(folder).as_posix()
            if wrapper:
                name = f"{wrapper}/{name}"
            if path.is_dir():
                archive.writestr(name + "/", b"")
            else:
                archive.write(path, name)
        for name, data in extra:
            archive.writestr(name, data)
    return zip_path


def corrupt_member(zip_bytes: bytes, suffix: str) -> bytes:
    """The zip with bytes flipped inside the data of the first entry ending in `suffix` (directory intact)."""
    import io

    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(suffix))
    header = info.header_offset
    name_len = int.from_bytes(zip_bytes[header + 26:header + 28], "little")
    extra_len = int.from_bytes(zip_bytes[header + 28:header + 30], "little")
    start = header + 30 + name_len + extra_len + info.compress_size // 2
    damaged = bytearray(zip_bytes)
    for i in range(start, start + 8):
        damaged[i] ^= 0xFF
    return bytes(damaged)


def symlink_entry(name: str, target: str) -> Tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing(root: Path) -> list:
    """Every path under `root` (relative, sorted) with file sizes: compares a cache before and after."""
    root = Path(root)
    if not root.exists():
        return ["<absent>"]
    return sorted(
        (p.relative_to(root).as_posix(), p.stat().st_size if p.is_file() else None) for p in root.rglob("*")
    )


def free_port() -> int:
    """A local port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ModelServer:
    """A real HTTP server on 127.0.0.1 (in a thread). `routes[path]` is bytes (200), an int (that HTTP status),
    ("cut", bytes) (announces the full length, sends half, closes) or ("stall", bytes) (sends half, then waits
    until `release` is set)."""

    def __init__(self):
        self.routes: Dict[str, object] = {}
        self.requests: list = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                route = server.routes.get(self.path, 404)
                if isinstance(route, int):
                    self.send_error(route)
                    return
                mode, data = ("full", route) if isinstance(route, bytes) else route
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if mode == "full":
                    self.wfile.write(data)
                    return
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                if mode == "stall":
                    server.release.wait(60)
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


def offline_env(home: Path) -> dict:
    """Environment for CLI subprocesses: the test cache, and every proxy pointed at a closed local port so that an
    accidental request to the internet is refused instead of sent (127.0.0.1 itself is exempt)."""
    env = dict(os.environ)
    blackhole = f"http://127.0.0.1:{free_port()}"
    env.update({
        "ROOTLETSEG_HOME": str(home), "http_proxy": blackhole, "https_proxy": blackhole, "HTTP_PROXY": blackhole,
        "HTTPS_PROXY": blackhole, "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("ALL_PROXY", None)
    env.pop("all_proxy", None)
    return env
