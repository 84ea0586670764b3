"""The demo workflow: `rootletseg run` on a synthetic phantom with the embedded demo models, offline.

1. Make the phantom (`phantom.make_phantom`) and write it (image, true rootlets, cord, discs, PMJ, truth.json).
2. `pipeline.run.run_pipeline` on the phantom image with the `demo-spine` landmark model (cord and discs found, not
   taken from the phantom's truth) and the `demo` rootlet model; the PMJ is the phantom's, as a user would place it:
   cord, discs, label map, sidecars, levels, pairings, planning JSON, markups, figures, one all-or-nothing set.
File names: `RootletSegLogic.naming`.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Union

from RootletSegLogic import naming
from RootletSegLogic.errors import UserError
from RootletSegLogic.images.atomic import check_outputs
from RootletSegLogic.images.files import absolute_path
from RootletSegLogic.progress import ProgressCallback, ProgressEvent, no_progress

DEMO_MODEL = "demo"
DEMO_LANDMARK_MODEL = "demo-spine"


def run_demo(out_dir: Union[str, os.PathLike], seed: int = 0, overwrite: bool = False,
             threads: Optional[int] = None, progress: Optional[ProgressCallback] = None,
             warn=None) -> Dict[str, str]:
    """Write the phantom of `seed` into `out_dir` and run the whole pipeline on it (see the module docstring).

    Existing outputs are an error unless `overwrite`, checked before anything is made. Returns {output name:
    absolute path}: phantom_<name>, landmarks_<cord|discs|sidecar>, segmentation, sidecar, levels_<LevelOutputs
    name>, figure_level_chart, figure_qc_sagittal (PNGs; each has an .svg beside it, figure_<name>_svg)."""
    from RootletSegLogic.pipeline.landmarks import resolve_landmark_model
    from RootletSegLogic.pipeline.run import planned_outputs, run_pipeline
    from RootletSegLogic.segmentation.workflow import resolve_model
    from RootletSegLogic.synthetic.phantom import make_phantom, write_phantom

    progress = progress or no_progress
    out_dir = absolute_path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"The demo output '{out_dir}' is a file: give a folder.")
    image_path = naming.demo_image_path(out_dir)
    if out_dir.is_dir():  # fail at once, before anything is made or written, when a run is there already
        check_outputs(list(planned_outputs(image_path, out_dir, True, True).values()), overwrite)
    # missing models fail before anything is written
    landmark_model = resolve_landmark_model(DEMO_LANDMARK_MODEL, progress, warn)
    model = resolve_model(DEMO_MODEL, progress=progress, warn=warn)
    progress(ProgressEvent("phantom", 0, 1, f"seed {seed}"))
    phantom = make_phantom(seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {f"phantom_{name}": str(path) for name, path in write_phantom(phantom, out_dir, overwrite).items()}
    progress(ProgressEvent("phantom", 1, 1, str(out_dir)))
    run = run_pipeline(written["phantom_image"], out_dir, model=model, landmark_model=landmark_model,
                       pmj=written["phantom_pmj"], threads=threads, overwrite=overwrite, progress=progress,
                       warn=warn, title=f"Demo phantom (seed {seed})")
    outputs = dict(written)
    outputs.update(run.outputs)
    return outputs
