"""nnU-Net's predictor ready sooner (segmentation/nnunet_startup.py): imported without PyTorch's compiler, and its
gaussian tile weights made in the background into nnU-Net's own cache. Each import check runs in a fresh
interpreter, where nothing has loaded the compiler yet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]

_IMPORT_CHECK = """
import json, sys
from RootletSegLogic.segmentation.nnunet_startup import import_nnunet_predictor_module
module = import_nnunet_predictor_module()
result = {"dynamo_after_import": "torch._dynamo" in sys.modules, "sympy": "sympy" in sys.modules}
import torch, torch._dynamo
result["real_dynamo_later"] = hasattr(torch._dynamo, "optimize") and torch._dynamo.OptimizedModule is not module.OptimizedModule
network = torch.nn.Conv3d(1, 1, 1)
result["plain_network_not_compiled"] = not isinstance(network, module.OptimizedModule)
compiled = torch.compile(network)  # the real compiler still works in this process
result["compile_works"] = isinstance(compiled, torch._dynamo.OptimizedModule)
# nnU-Net's own checks see a network compiled after its import as compiled
result["nnunet_sees_compiled"] = isinstance(compiled, module.OptimizedModule)
print(json.dumps(result))
"""


def _run(code: str, **env) -> dict:
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO), **env),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_predictor_imports_without_the_compiler_which_still_loads_when_asked_for():
    result = _run(_IMPORT_CHECK)
    assert result == {"dynamo_after_import": False, "sympy": False, "real_dynamo_later": True,
                      "plain_network_not_compiled": True, "compile_works": True, "nnunet_sees_compiled": True}


def test_when_nnunet_is_asked_to_compile_the_predictor_is_imported_plainly():
    result = _run(_IMPORT_CHECK, nnUNet_compile="1")
    assert result["dynamo_after_import"] is True and result["compile_works"] is True


def test_the_tile_weights_made_in_the_background_are_the_ones_the_sliding_window_uses(tmp_path):
    from model_factory import make_model_folder, small_plans
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    from RootletSegLogic.segmentation.model_folder import load_model_folder
    from RootletSegLogic.segmentation.nnunet_startup import finish, start_tile_weights
    from RootletSegLogic.segmentation.predictor import Segmenter

    model = load_model_folder(make_model_folder(tmp_path / "model", small_plans(patch_size=(16, 24, 32)), seed=1))
    compute_gaussian.cache_clear()
    finish(start_tile_weights((16, 24, 32)))
    assert compute_gaussian.cache_info().currsize == 1
    expected = compute_gaussian((16, 24, 32), sigma_scale=1. / 8, value_scaling_factor=10, device="cpu")
    assert compute_gaussian.cache_info().misses == 2  # another call (a string device) computes them anew ...

    compute_gaussian.cache_clear()
    segmenter = Segmenter(model, device="cpu", threads=1, backend="torch")
    image = sitk.GetImageFromArray(np.random.default_rng(0).normal(100, 20, (40, 36, 30)).astype(np.float32))
    segmenter.segment(image)
    info = compute_gaussian.cache_info()
    # ... while the sliding window found the background thread's weights: computed once, then a hit
    assert (info.misses, info.hits) == (1, 1)
    cached = compute_gaussian((16, 24, 32), sigma_scale=1. / 8, value_scaling_factor=10,
                              device=__import__("torch").device("cpu"))
    assert np.array_equal(cached.numpy(), expected.numpy())
