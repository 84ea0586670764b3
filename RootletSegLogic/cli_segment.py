"""`rootletseg segment IMAGE`: rootlet label map (value = spinal level) + JSON sidecar, with SCT's settings.

Heavy imports (torch, nnU-Net) happen inside `run`, so `rootletseg --help` stays instant.

Hooks for spinal levels: `add_level_arguments` adds the options that take the inputs levels need (--cord, --discs,
--pmj) and `after_segmentation` turns the label map into level outputs. Both do nothing yet; the levels work fills
them in (the segmentation itself must not depend on them).
"""

from __future__ import annotations

import argparse

from .cli import add_progress_option

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


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
    """Hook for the levels step (--cord/--discs/--pmj): adds nothing yet."""


def after_segmentation(args: argparse.Namespace, outputs: dict, reporter) -> dict:
    """Hook for the levels step: gets the written outputs ({"segmentation": path, "sidecar": path}) and returns them,
    plus any level outputs. Does nothing yet."""
    return outputs


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
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_level_arguments(parser)
    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, reporter) -> int:
    from .inference import segment_file

    outputs = segment_file(
        args.image, args.output, model=args.model, device=args.device, tta=args.tta, step=args.step,
        folds=args.folds, overwrite=args.overwrite, progress=reporter, warn=reporter.warning, threads=args.threads,
    )
    outputs = after_segmentation(args, outputs, reporter)
    reporter.result(outputs)
    return 0
