"""`rootletseg levels`: spinal levels from rootlets (+ cord), vertebral levels from discs, their correspondence.

    rootletseg levels --rootlets R.nii.gz [--cord C.nii.gz] [--discs D.nii.gz | --disc-points P.json|.csv|.mrk.json]
                      [--pmj PMJ.nii.gz] -o OUT.tsv [--json OUT.json] [--markups OUT.mrk.json] [--pairings P.tsv]
                      [--label-image OUT_levels.nii.gz] [--method paper|gapless] [--overwrite]

All outputs are written together or not at all. Disc and PMJ label images may be on any grid (only their world
positions are used); the cord mask must be on the rootlets' grid. A PMJ point (value 50) inside the disc file is
used when --pmj is not given.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "levels",
        help="spinal levels from rootlets and vertebral levels from discs, in mm (table, JSON, markups)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--rootlets", required=True, metavar="R.nii.gz",
                        help="rootlet label map (2 = C2 ... 9 = T1), e.g. the output of `rootletseg segment`")
    parser.add_argument("--cord", metavar="C.nii.gz",
                        help="spinal cord mask on the rootlets' grid; without it the levels come from the rootlets "
                             "alone (method 'rootlets-only', not the paper's method)")
    discs = parser.add_mutually_exclusive_group()
    discs.add_argument("--discs", metavar="D.nii.gz", help="SCT disc label image (2 = C1/C2, 3 = C2/C3, ..., 50 = PMJ)")
    discs.add_argument("--disc-points", metavar="P.json", help="disc points: .csv/.tsv/.json/.mrk.json (see docs)")
    parser.add_argument("--pmj", metavar="PMJ.nii.gz", help="PMJ label image (value 50, or a single label)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.tsv", help="level table (TSV)")
    parser.add_argument("--json", metavar="OUT.json", help="planning JSON (points in RAS and LPS, provenance)")
    parser.add_argument("--markups", metavar="OUT.mrk.json", help="Slicer markups with the level bounds")
    parser.add_argument("--pairings", metavar="PAIRS.tsv", help="table of vertebral/spinal pairings (both pairings)")
    parser.add_argument("--label-image", metavar="OUT_levels.nii.gz",
                        help="spinal level label image: cord voxels marked with their level (needs --cord)")
    parser.add_argument("--method", choices=("paper", "gapless"), default="paper",
                        help="paper: bounds of each level's rootlets (default); gapless: each level runs to the "
                             "next level's rostral bound (SCT issue 5111)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    from .cli import add_progress_option

    add_progress_option(parser)
    parser.set_defaults(func=run)


def _provenance(args: argparse.Namespace) -> dict:
    from . import __version__
    from .imageio import file_sha256

    inputs = {}
    for key in ("rootlets", "cord", "discs", "disc_points", "pmj"):
        path = getattr(args, key)
        if path:
            from pathlib import Path

            inputs[key] = {"path": str(Path(path).absolute()), "sha256": file_sha256(path)}
    return {"inputs": inputs, "method": args.method, "software": "rootletseg", "software_version": __version__}


def run(args: argparse.Namespace, reporter) -> int:
    from pathlib import Path

    import SimpleITK as sitk

    from . import discs as discs_module
    from . import export, imageio, levels
    from .errors import UserError

    outputs = [("table", args.output), ("planning_json", args.json), ("markups", args.markups),
               ("pairings", args.pairings), ("label_image", args.label_image)]
    outputs = [(name, path) for name, path in outputs if path]
    if args.label_image and not args.cord:
        raise UserError("--label-image needs --cord: the spinal level label image marks cord voxels.")
    imageio.check_outputs([p for _, p in outputs], args.overwrite)

    rootlets = imageio.read_label_map(args.rootlets, "rootlet segmentation")
    cord = imageio.read_label_map(args.cord, "spinal cord mask") if args.cord else None
    disc_points, pmj = [], None
    if args.discs:
        disc_points, pmj = discs_module.landmarks_from_label_image(imageio.read_label_map(args.discs, "disc label image"))
    elif args.disc_points:
        disc_points, pmj = discs_module.read_landmarks(args.disc_points)
    if args.pmj:
        pmj = discs_module.pmj_from_label_image(imageio.read_label_map(args.pmj, "PMJ label image"))

    result = levels.compute_levels(rootlets, cord, disc_points, pmj, method=args.method, progress=reporter)
    result.provenance = _provenance(args)
    label_image = levels.spinal_level_label_image(rootlets, cord, result) if args.label_image else None
    for warning in result.warnings:
        reporter.warning(warning)

    targets = {name: Path(path).absolute() for name, path in outputs}
    with imageio.atomic_outputs([p for _, p in outputs], args.overwrite) as temporaries:
        tmp = {name: t for (name, _), t in zip(outputs, temporaries)}
        if label_image is not None:
            sitk.WriteImage(label_image, str(tmp["label_image"]), True)
        export.write_level_outputs(
            result,
            tsv_path=tmp["table"],
            json_path=tmp.get("planning_json"),
            markups_path=tmp.get("markups"),
            pairings_path=tmp.get("pairings"),
            overwrite=True,  # only our own temporary files are replaced; the user's files are checked above
            provenance=result.provenance,
        )
    reporter.result({name: str(path) for name, path in targets.items()})
    return 0
