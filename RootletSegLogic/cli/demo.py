"""`rootletseg demo`: the whole pipeline, offline, on a synthetic phantom with the embedded demo model.

1. Make the phantom (`phantom.make_phantom`) and write it (image, true rootlets, cord, discs, PMJ, truth.json).
2. Segment the phantom image with the `demo` model through `inference.segment_file`, the same code path as the
   real models (registry resolution, orientation, nnU-Net, label map + sidecar).
3. Spinal levels from the segmentation and the phantom's cord, vertebral levels from its discs, distances from
   its PMJ (`level_files`, as `rootletseg levels`): table, pairings, planning JSON, markups, level label image.
4. Figures: the level chart and a sagittal QC image.
Prints where everything went.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from RootletSegLogic.cli.main import add_progress_option


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run RootletSeg offline on a synthetic phantom with the embedded demo model",
        description="Write a synthetic spine phantom into --out, segment its rootlets with the embedded demo model "
        "(the same code path as real models) and print where everything went. Runs offline in about a minute.",
    )
    parser.add_argument("--out", default="rootletseg_demo", help="output folder (default: ./rootletseg_demo)")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files in the output folder")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the network (default: all CPUs)")
    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, reporter) -> int:
    from RootletSegLogic.analysis.figures import level_chart
    from RootletSegLogic.analysis.qc_figure import sagittal_qc
    from RootletSegLogic.errors import UserError
    from RootletSegLogic.images.atomic import check_outputs
    from RootletSegLogic.images.files import absolute_path
    from RootletSegLogic.levels.files import (
        LevelInputs,
        default_level_outputs,
        levels_from_files_to_files,
    )
    from RootletSegLogic.progress import ProgressEvent
    from RootletSegLogic.segmentation.workflow import (
        default_output_path,
        resolve_model,
        segment_file,
        sidecar_path_for,
    )
    from RootletSegLogic.synthetic.phantom import make_phantom, write_phantom

    out_dir = absolute_path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"The demo output '{out_dir}' is a file: give a folder.")
    image_path = out_dir / "image.nii.gz"
    segmentation_path = default_output_path(image_path)
    level_outputs = default_level_outputs(out_dir, "image", with_label_image=True)
    figure_bases = {"level_chart": out_dir / "level_chart", "qc_sagittal": out_dir / "qc_sagittal"}
    figure_paths = [base.with_suffix(ext) for base in figure_bases.values() for ext in (".png", ".svg")]
    if out_dir.is_dir():  # fail at once, before anything is made or written, when a run is there already
        check_outputs([segmentation_path, sidecar_path_for(segmentation_path)]
                      + [p for _, p in level_outputs.items()] + figure_paths, args.overwrite)
    model = resolve_model("demo", progress=reporter, warn=reporter.warning)  # a missing model fails before writing
    reporter(ProgressEvent("phantom", 0, 1, f"seed {args.seed}"))
    phantom = make_phantom(seed=args.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {f"phantom_{name}": str(path) for name, path in write_phantom(phantom, out_dir, args.overwrite).items()}
    reporter(ProgressEvent("phantom", 1, 1, str(out_dir)))
    outputs = segment_file(written["phantom_image"], model=model, overwrite=args.overwrite,
                           progress=reporter, warn=reporter.warning, threads=args.threads)
    inputs = LevelInputs(Path(outputs["segmentation"]), Path(written["phantom_cord"]), Path(written["phantom_discs"]),
                         None, Path(written["phantom_pmj"]))
    result, level_files = levels_from_files_to_files(
        inputs, level_outputs, "paper", args.overwrite, provenance_extra={"model": model.metadata.get("name")},
        progress=reporter, warn=reporter.warning,
    )
    reporter(ProgressEvent("figures", 0, 2, "level chart, sagittal QC"))
    chart = level_chart(result, figure_bases["level_chart"], overwrite=args.overwrite,
                                title=f"Demo phantom (seed {args.seed}): spinal vs vertebral levels")
    qc = sagittal_qc(phantom.image, outputs["segmentation"], phantom.cord, phantom.discs, result,
                             out_base=figure_bases["qc_sagittal"], overwrite=args.overwrite,
                             title="Demo phantom: segmented rootlets, cord, discs and level bounds")
    reporter(ProgressEvent("figures", 2, 2, "done"))
    outputs.update(written)
    outputs.update({f"levels_{name}": path for name, path in level_files.items()})
    outputs.update({"figure_level_chart": str(chart[0]), "figure_qc_sagittal": str(qc[0])})
    reporter.result(outputs)
    return 0
