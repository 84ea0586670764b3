"""`rootletseg segment IMAGE`: rootlet label map (value = spinal level) + JSON sidecar, with SCT's settings.

Heavy imports (torch, nnU-Net) happen inside `run`, so `rootletseg --help` stays instant.

With --cord and/or --discs/--disc-points (and --pmj), the levels are computed from the new segmentation too and
written beside it as `<stem>_levels.tsv`, `_levels.json`, `_levels.mrk.json`, `_pairings.tsv` (and, with a cord,
`_levels.nii.gz`; names from `RootletSegLogic.naming`): the same outputs as `rootletseg levels`, computed from the
label map in memory and written with it as one set (`segmentation.workflow.segment_and_levels`). Level inputs and
outputs are checked before the (long) segmentation starts.

Speed: --backend chooses what runs the network (OpenVINO on the CPU by default when installed, for volumes of two
or more tiles); with --cord the network runs only on the cord's box dilated by --roi-margin-mm and grown onto the
model's grid (--no-crop: the whole volume). Both are recorded in the sidecar.
"""

from __future__ import annotations

import argparse

from RootletSegLogic.cli.levels import DISTANCE_HELP, DISTANCES, METHOD_HELP, METHODS
from RootletSegLogic.cli.main import add_progress_option

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
BACKENDS = ("auto", "torch", "openvino")  # segmentation.backends.BACKENDS, without importing it for --help
DEFAULT_ROI_MARGIN_MM = 25.0  # segmentation.roi.DEFAULT_ROI_MARGIN_MM (a test keeps the two equal)


def parse_folds(text: str):
    """`all` -> None (every fold of the model); `0,1,4` -> [0, 1, 4]."""
    text = text.strip().lower()
    if text == "all":
        return None
    try:
        folds = [int(part) for part in text.split(",") if part.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not 'all' or a comma-separated list of fold numbers") from None
    if not folds:
        raise argparse.ArgumentTypeError("give 'all' or fold numbers such as 0,1")
    return folds


def add_level_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that make `segment` also write the level outputs (as `rootletseg levels` does)."""
    group = parser.add_argument_group("levels (optional: also write the level table from the new segmentation)")
    group.add_argument("--cord", metavar="C.nii.gz", help="spinal cord mask on the image grid (paper method)")
    discs = group.add_mutually_exclusive_group()
    discs.add_argument("--discs", metavar="D.nii.gz", help="SCT disc label image (2 = C1/C2, 3 = C2/C3, ..., 50 = PMJ)")
    discs.add_argument("--disc-points", metavar="P.json", help="disc points: .csv/.tsv/.json/.mrk.json")
    group.add_argument("--pmj", metavar="PMJ.nii.gz", help="PMJ label image (value 50)")
    group.add_argument("--method", choices=METHODS, default="paper", help=METHOD_HELP)
    group.add_argument("--distance", choices=DISTANCES, default="pmj", help=DISTANCE_HELP)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment the spinal nerve rootlets of an image (nnU-Net v2)",
        description="Segment the spinal nerve rootlets of a 3D image with an nnU-Net v2 model. Writes a label map "
        "(value = spinal level: 2 = C2 ... 8 = C8, 9 = T1) on exactly the input grid, named <stem>_rootlets.nii.gz "
        "beside the input unless -o is given, and a JSON sidecar <stem>_rootlets.json recording the model, "
        "settings and software versions. Settings as the Spinal Cord Toolbox: tile step 0.5, gaussian weighting, "
        "no mirroring unless --tta, no postprocessing.",
    )
    parser.add_argument("image", help="input image (.nii.gz, .nii, .nrrd, .mha; a _0000 suffix is fine)")
    parser.add_argument("-o", "--output", help="output label map (default: <stem>_rootlets.nii.gz beside the input)")
    parser.add_argument("--model", default="rootletseg",
                        help="registry name (rootletseg, m5, demo), or an nnU-Net v2 model folder or zip "
                        "(default: rootletseg, downloaded on first use)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="where to run the network (default auto: cuda, else mps, else cpu)")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation by mirroring (slower, up to 8x; off by default as in SCT)")
    parser.add_argument("--step", type=float, default=0.5,
                        help="sliding-window tile step as a fraction of the patch size (default 0.5)")
    parser.add_argument("--folds", type=parse_folds, default=None, metavar="all|0,1,..",
                        help="which folds of the model to ensemble (default: all present)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for the network (default: all CPUs; fewer can be faster on a busy machine)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="what runs the network: openvino (CPU only, faster), torch (nnU-Net's own path, as SCT), "
                        "or auto (default: openvino on the CPU when installed and the volume needs two tiles or more, torch "
                        "otherwise and on GPUs)")
    parser.add_argument("--roi-margin-mm", type=float, default=DEFAULT_ROI_MARGIN_MM, metavar="MM",
                        help="with --cord, predict only on the cord's bounding box dilated by this many mm "
                        f"(default {DEFAULT_ROI_MARGIN_MM:g}), grown onto the model's grid, and put the result "
                        "back on the full grid")
    parser.add_argument("--no-crop", dest="crop_to_cord", action="store_false",
                        help="predict the whole volume even when a cord mask is given")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_level_arguments(parser)
    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, reporter) -> int:
    from RootletSegLogic.segmentation.workflow import (
        default_output_path,
        level_request_for,
        segment_file,
    )

    levels = level_request_for(args.output or default_output_path(args.image), args.cord, args.discs,
                               args.disc_points, args.pmj, args.method, args.distance)
    outputs = segment_file(
        args.image, args.output, model=args.model, device=args.device, tta=args.tta, step=args.step,
        folds=args.folds, overwrite=args.overwrite, progress=reporter, warn=reporter.warning, threads=args.threads,
        levels=levels, backend=args.backend, roi_margin_mm=args.roi_margin_mm, crop_to_cord=args.crop_to_cord,
    )
    reporter.result(outputs)
    return 0
