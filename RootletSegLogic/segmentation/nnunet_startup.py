"""nnU-Net's predictor, ready sooner: imported without PyTorch's compiler, its tile weights made in the background.

Import: `nnunetv2.inference.predict_from_raw_data` does `from torch._dynamo import OptimizedModule` and uses the
class only in `isinstance` checks. Importing `torch._dynamo` (with sympy and the rest of the compiler) takes ~0.9 s
of the ~1.6 s the module costs (measured on this project's 2-core CI machine, `python -X importtime`), in every
process that segments. RootletSeg builds its networks itself and never compiles them, so for the duration of that
one import a stand-in module offers an `OptimizedModule` class, and is then removed. A later `import torch._dynamo`
(torch.compile, a conversion) loads the real one, and from then on the stand-in class answers `isinstance` with the
real class: nnU-Net's checks stay right even for a network compiled later in the same process (Slicer). When the
compiler is already loaded, nnU-Net is asked to compile (`nnUNet_compile`), or the import needs more of the
compiler than that one name, nnU-Net is imported plainly.

Tile weights: see `start_tile_weights`.
"""

from __future__ import annotations

import os
import sys
import threading
import types
from typing import Optional, Sequence

_DYNAMO = "torch._dynamo"


class _CompiledCheck(type):
    """`isinstance(x, OptimizedModule)` answered by the real class once the compiler is loaded: only then can a
    compiled network exist, so the answer is always the real check's."""

    def __instancecheck__(cls, instance) -> bool:
        dynamo = sys.modules.get(_DYNAMO)
        real = getattr(dynamo, "OptimizedModule", None)
        return real is not None and real is not cls and isinstance(instance, real)


class _NotCompiled(metaclass=_CompiledCheck):
    """Stands in for `torch._dynamo.OptimizedModule` in nnU-Net's predictor module (see the module docstring)."""


def import_nnunet_predictor_module():
    """`nnunetv2.inference.predict_from_raw_data`, imported without loading `torch._dynamo` when possible."""
    compile_asked = os.environ.get("nnUNet_compile", "").lower() in ("true", "1", "t")
    if "nnunetv2.inference.predict_from_raw_data" in sys.modules or _DYNAMO in sys.modules or compile_asked:
        import nnunetv2.inference.predict_from_raw_data as module

        return module
    import torch  # noqa: F401  (the stand-in must not be the first thing torch sees of itself)

    stand_in = types.ModuleType(_DYNAMO, "stand-in while nnU-Net's predictor is imported (see nnunet_startup)")
    stand_in.OptimizedModule = _NotCompiled
    sys.modules[_DYNAMO] = stand_in
    try:
        import nnunetv2.inference.predict_from_raw_data as module
    except ImportError:  # something in the chain wanted more of the compiler: import it for real
        sys.modules.pop(_DYNAMO, None)
        for name in [n for n in sys.modules if n.startswith("nnunetv2.")]:
            if getattr(sys.modules[name], "OptimizedModule", None) is _NotCompiled:
                sys.modules.pop(name, None)
        import nnunetv2.inference.predict_from_raw_data as module
    finally:
        if sys.modules.get(_DYNAMO) is stand_in:
            del sys.modules[_DYNAMO]
    return module


def start_tile_weights(patch_size: Sequence[int]) -> threading.Thread:
    """Compute nnU-Net's gaussian tile weights for `patch_size` in a background thread, into nnU-Net's own cache.

    nnU-Net's CPU sliding window computes them at its start (`compute_gaussian`, a SciPy gaussian filter over the
    patch: 0.34 s for the full-size network's 224x224x48, measured on the 2-core CI machine) and caches them per
    process. Called here with the very arguments the sliding window passes, the same function fills the same cache
    while the network is built and its weights loaded (SciPy releases the GIL); the sliding window then finds them.
    Join the thread before predicting: an unfinished one would only make nnU-Net compute them a second time.
    An interpreter that exits first waits for the thread (at most the time of one computation).
    """
    def compute() -> None:
        import torch
        from nnunetv2.inference.sliding_window_prediction import compute_gaussian

        try:
            compute_gaussian(tuple(patch_size), sigma_scale=1. / 8, value_scaling_factor=10,
                             device=torch.device("cpu"))
        except Exception:  # nnU-Net computes them itself, and reports any problem, when it predicts
            pass

    # not a daemon: a command that stops on a user error right after loading must not exit while the thread is in
    # PyTorch or SciPy (the interpreter's teardown then aborts the process); Python waits for it at exit instead
    thread = threading.Thread(target=compute, name="rootletseg-tile-weights", daemon=False)
    thread.start()
    return thread


def finish(thread: Optional[threading.Thread]) -> None:
    """Wait for a `start_tile_weights` thread (nothing when None)."""
    if thread is not None:
        thread.join()
