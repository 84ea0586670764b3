"""Which engine runs the network inside nnU-Net's sliding window: PyTorch or OpenVINO (CPU).

`segment --backend auto|torch|openvino`:
- `auto`: OpenVINO when the network runs on the CPU and the `openvino` package is installed, PyTorch otherwise
  (GPUs and Apple MPS always run PyTorch, as nnU-Net does).
- `torch`: nnU-Net's own PyTorch path, exactly what SCT runs.
- `openvino`: the CPU only; a UserError when OpenVINO is not installed or the device is not the CPU.

Only the network call changes: nnU-Net's preprocessing, sliding window, gaussian weighting, fold ensembling and
export stay nnU-Net's (`openvino_backend.OpenVINONetwork`). A network OpenVINO cannot convert or compile falls back
to PyTorch with a warning (`Segmenter`).
"""

from __future__ import annotations

import importlib.util

from RootletSegLogic.errors import UserError

BACKENDS = ("auto", "torch", "openvino")


def openvino_available() -> bool:
    """True when the `openvino` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def check_backend(name: str) -> str:
    """The backend name, lower case; UserError for an unknown one."""
    backend = (name or "auto").strip().lower()
    if backend not in BACKENDS:
        raise UserError(f"The backend '{name}' is not known: use one of {', '.join(BACKENDS)}.")
    return backend


def choose_backend(requested: str, device_type: str) -> str:
    """"torch" or "openvino" for a requested backend and a torch device type ("cpu", "cuda", "mps")."""
    backend = check_backend(requested)
    if backend == "torch":
        return "torch"
    if backend == "auto":
        return "openvino" if device_type == "cpu" and openvino_available() else "torch"
    if device_type != "cpu":
        raise UserError(f"The OpenVINO backend runs on the CPU only, not on '{device_type}': "
                        "use --device cpu, or --backend torch (or auto) for the GPU.")
    if not openvino_available():
        raise UserError("The OpenVINO backend is not installed: install it with 'pip install openvino' "
                        "(or run 'make install'), or use --backend torch.")
    return "openvino"
