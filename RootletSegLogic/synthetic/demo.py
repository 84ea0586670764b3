"""The demo workflow: the whole pipeline, offline, on a synthetic phantom with the embedded demo model.

1. Make the phantom (`phantom.make_phantom`) and write it (image, true rootlets, cord, discs, PMJ, truth.json).
2. Segment the phantom image with the `demo` model and compute the levels from the new label map, its cord, discs
   and PMJ: `segmentation.workflow.segment_and_levels`, the code path of `rootletseg segment --cord --discs
   --pmj` with real models (label map, sidecar, table, pairings, planning JSON, markups, level label image, one
   all-or-nothing set). The phantom files play the user's input files there: each is decoded once.
3. Figures from the results in memory: the level chart and a sagittal QC image.
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


def run_demo(out_dir: Union[str, os.PathLike], seed: int = 0, overwrite: bool = False,
             threads: Optional[int] = None, progress: Optional[ProgressCallback] = None,
             warn=None) -> Dict[str, str]:
    """Write the phantom of `seed` into `out_dir`, segment it, compute and write its levels and the figures.

    Existing outputs are an error unless `overwrite`, checked before anything is made. Returns {output name:
    absolute path}: segmentation, sidecar, phantom_<name>, levels_<LevelOutputs name>, figure_level_chart,
    figure_qc_sagittal (the PNGs; each figure also has an .svg beside it)."""
    from RootletSegLogic.analysis.figures import level_chart
    from RootletSegLogic.analysis.qc_figure import sagittal_qc
    from RootletSegLogic.segmentation.workflow import (
        level_request_for,
        resolve_model,
        segment_and_levels,
    )
    from RootletSegLogic.synthetic.phantom import make_phantom, write_phantom

    progress = progress or no_progress
    out_dir = absolute_path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"The demo output '{out_dir}' is a file: give a folder.")
    image_path = naming.demo_image_path(out_dir)
    segmentation_path, sidecar_path = naming.segment_outputs(image_path, None)
    # the level outputs `segment_and_levels` will write: named after the label map (image_rootlets -> image_levels)
    level_outputs = naming.level_paths_for_segmentation(segmentation_path, with_label_image=True)
    figure_bases = naming.demo_figure_bases(out_dir)
    figure_files = [path for base in figure_bases.values() for path in naming.figure_paths(base)]
    if out_dir.is_dir():  # fail at once, before anything is made or written, when a run is there already
        check_outputs([segmentation_path, sidecar_path] + list(level_outputs.values()) + figure_files, overwrite)
    model = resolve_model(DEMO_MODEL, progress=progress, warn=warn)  # a missing model fails before writing
    progress(ProgressEvent("phantom", 0, 1, f"seed {seed}"))
    phantom = make_phantom(seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {f"phantom_{name}": str(path) for name, path in write_phantom(phantom, out_dir, overwrite).items()}
    progress(ProgressEvent("phantom", 1, 1, str(out_dir)))

    levels = level_request_for(segmentation_path, cord=written["phantom_cord"], discs=written["phantom_discs"],
                               pmj=written["phantom_pmj"])
    run = segment_and_levels(written["phantom_image"], segmentation_path, model=model, overwrite=overwrite,
                             progress=progress, warn=warn, threads=threads, levels=levels)

    progress(ProgressEvent("figures", 0, 2, "level chart, sagittal QC"))
    chart = level_chart(run.levels, figure_bases["level_chart"], overwrite=overwrite,
                        title=f"Demo phantom (seed {seed}): spinal vs vertebral levels")
    qc = sagittal_qc(phantom.image, run.labels, phantom.cord, phantom.discs, run.levels,
                     out_base=figure_bases["qc_sagittal"], overwrite=overwrite,
                     title="Demo phantom: segmented rootlets, cord, discs and level bounds")
    progress(ProgressEvent("figures", 2, 2, "done"))
    outputs = {"segmentation": run.outputs["segmentation"], "sidecar": run.outputs["sidecar"]}
    outputs.update(written)
    outputs.update({f"levels_{name}": path for name, path in run.outputs.items()
                    if name not in ("segmentation", "sidecar")})
    outputs.update({"figure_level_chart": str(chart[0]), "figure_qc_sagittal": str(qc[0])})
    return outputs
