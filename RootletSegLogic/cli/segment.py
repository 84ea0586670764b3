"""`rootletseg segment IMAGE`: rootlet label map (value = spinal level) + JSON sidecar, with SCT's settings.

Heavy imports (torch, nnU-Net) happen inside `run`, so `rootletseg --help` stays instant.

With --cord and/or --discs/--disc-points (and --pmj), the levels are computed from the new segmentation too and
written beside it as `<stem>_levels.tsv`, `_levels.json`, `_levels.mrk.json`, `level_pairings.tsv` (and, with a cord,
`_levels.nii.gz`): the same outputs as `rootletseg levels`. Level inputs and outputs are checked before the
(long) segmentation starts.
"""

from __future__ import annotations

import argparse

from RootletSegLogic.cli.main import add_progress_option

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
    """Options that make `segment` also write the level outputs (as `rootletseg levels` does)."""
    group = parser.add_argument_group("levels (optional: also write the level table from the new segmentation)")
    group.add_argument("--cord", metavar="C.nii.gz", help="spinal cord mask on the image grid (paper method)")
    discs = group.add_mutually_exclusive_group()
    discs.add_argument("--discs", metavar="D.nii.gz", help="SCT disc label image (2 = C1/C2, 3 = C2/C3, ..., 50 = PMJ)")
    discs.add_argument("--disc-points", metavar="P.json", help="disc points: .csv/.tsv/.json/.mrk.json")
    group.add_argument("--pmj", metavar="PMJ.nii.gz", help="PMJ label image (value 50)")
    group.add_argument("--method", choices=("paper", "gapless"), default="paper", help="level method (default paper)")


def _level_request(args: argparse.Namespace, segmentation_path):
    """(LevelInputs, LevelOutputs) when level inputs were given, else None. Outputs go beside the segmentation and
    are named after it: `sub-01_rootlets.nii.gz` -> `sub-01_levels.tsv`, ..."""
    from pathlib import Path

    from RootletSegLogic.images.files import image_stem
    from RootletSegLogic.levels.files import LevelInputs, default_level_outputs
    from RootletSegLogic.segmentation.workflow import OUTPUT_SUFFIX

    if not (args.cord or args.discs or args.disc_points):
        if args.pmj:
            from RootletSegLogic.errors import UserError

            raise UserError("--pmj alone gives no levels: add --cord and/or --discs.")
        return None
    inputs = LevelInputs(Path(segmentation_path), *(Path(p) if p else None for p in
                                                    (args.cord, args.discs, args.disc_points, args.pmj)))
    stem = image_stem(segmentation_path)
    if stem.endswith(OUTPUT_SUFFIX) and len(stem) > len(OUTPUT_SUFFIX):
        stem = stem[: -len(OUTPUT_SUFFIX)]
    outputs = default_level_outputs(Path(segmentation_path).parent, stem, with_label_image=bool(args.cord))
    return inputs, outputs


def _check_cord_grid(image_path, cord_path) -> None:
    """The segmentation lands exactly on the image grid, so a cord mask on another grid fails now, not after the
    (long) segmentation."""
    from RootletSegLogic.images.grid import check_same_grid
    from RootletSegLogic.images.reading import read_image, read_label_map

    check_same_grid(read_label_map(cord_path, "spinal cord mask"), read_image(image_path),
                            what="spinal cord mask", reference_what="input image")


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
    import json

    from RootletSegLogic.errors import UserError
    from RootletSegLogic.levels.files import (
        check_level_request,
        levels_from_files_to_files,
    )
    from RootletSegLogic.segmentation.workflow import default_output_path, segment_file

    segmentation_path = args.output or default_output_path(args.image)
    request = _level_request(args, segmentation_path)
    if request:
        inputs, level_outputs = request
        check_level_request(inputs, level_outputs, args.overwrite, rootlets_pending=True)
        if args.cord:
            _check_cord_grid(args.image, args.cord)
    outputs = segment_file(
        args.image, args.output, model=args.model, device=args.device, tta=args.tta, step=args.step,
        folds=args.folds, overwrite=args.overwrite, progress=reporter, warn=reporter.warning, threads=args.threads,
    )
    if request:
        with open(outputs["sidecar"], encoding="utf-8") as handle:
            sidecar = json.load(handle)
        try:
            _, written = levels_from_files_to_files(
                inputs, level_outputs, args.method, args.overwrite, provenance_extra={"model": sidecar.get("model")},
                progress=reporter, warn=reporter.warning,
            )
        except UserError as error:
            reason = str(error)
            raise UserError(f"The segmentation was written to '{outputs['segmentation']}', but not the levels: "
                            f"{reason[:1].lower()}{reason[1:]}") from None
        outputs.update(written)
    reporter.result(outputs)
    return 0
