"""Loading nnU-Net checkpoints safely: PyTorch's weights-only unpickler with the plain types nnU-Net's trainer saves;
the full unpickler only when the user opts in (`--trust-checkpoints` / ROOTLETSEG_TRUST_CHECKPOINTS=1)."""

from __future__ import annotations

import os
import re

import numpy as np

from RootletSegLogic.errors import Cancelled, UserError

# Opt-in for checkpoints that need more than plain data to unpickle (a pickle can run any code while loading).
TRUST_ENV = "ROOTLETSEG_TRUST_CHECKPOINTS"
TRUST_HINT = ("if you trust its source and accept that loading it can run code, run again with --trust-checkpoints "
              f"(or {TRUST_ENV}=1)")


def _checkpoint_globals() -> list:
    """What nnU-Net checkpoints hold beyond tensors and Python containers, for PyTorch's weights-only unpickler.

    nnU-Net's trainer saves its logging (NumPy float scalars), `_best_ema` (a NumPy scalar), `init_args` (plans and
    dataset dicts, a `torch.device`) and the optimizer / grad-scaler states. NumPy scalars and arrays pickle as
    `numpy.core.multiarray.scalar` / `_reconstruct` under NumPy 1 (the official models) and `numpy._core...` under
    NumPy 2, so both names are allowed for the same functions. None of these can run code: they rebuild values.
    """
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    allowed: list = [np.dtype, np.ndarray]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed += [(multiarray.scalar, f"{module}.scalar"), (multiarray._reconstruct, f"{module}._reconstruct")]
    dtypes = getattr(np, "dtypes", None)  # NumPy >= 1.25 may pickle a dtype by its class
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType")]
    return allowed


def trust_from_environment() -> bool:
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def load_checkpoint(path, trust: bool = False):
    """The checkpoint at `path` as a dict, unpickled by PyTorch's weights-only unpickler (tensors, Python containers
    and numbers, `torch.device`, NumPy scalars / dtypes / arrays) so that a crafted pickle cannot run code.
    A checkpoint needing anything else is refused with a UserError naming the opt-in (`trust=True`, which loads it
    with the full unpickler). A damaged file is a UserError too."""
    import pickle

    import torch

    try:
        if trust:
            return torch.load(path, map_location=torch.device("cpu"), weights_only=False)
        with torch.serialization.safe_globals(_checkpoint_globals()):
            return torch.load(path, map_location=torch.device("cpu"), weights_only=True)
    except Cancelled:
        raise
    except pickle.UnpicklingError as error:
        match = re.search(r"GLOBAL ([\w.]+)", str(error))
        if match or "weights_only" in str(error).lower() or "weights only" in str(error).lower():
            needed = f" ({match.group(1)})" if match else ""
            raise UserError(f"The checkpoint '{path}' needs Python objects beyond weights{needed} to load, and "
                            f"unpickling them could run code, so it was not loaded: {TRUST_HINT}.") from None
        raise UserError(f"The checkpoint '{path}' could not be read (UnpicklingError): "
                        "the file is damaged; download or copy the model again.") from None
    except Exception as error:  # a damaged or foreign file: reading can fail in many ways
        raise UserError(f"The checkpoint '{path}' could not be read ({type(error).__name__}): "
                        "the file is damaged; download or copy the model again.") from None
