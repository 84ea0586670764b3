"""`rootletseg phantom`: write a synthetic spine phantom (image, rootlets, cord, discs, PMJ, truth.json)."""

from __future__ import annotations

import argparse
from pathlib import Path

from RootletSegLogic.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "phantom",
        help="write a synthetic spine phantom with known rootlets, cord, discs and PMJ",
        description=(
            "Write a synthetic T2w-like cervical spine phantom into DIR: image.nii.gz, rootlets.nii.gz (levels 2..9 = "
            "C2..T1), cord.nii.gz, discs.nii.gz (SCT disc labels 2..9), pmj.nii.gz (value 50) and truth.json. "
            "--shape and --spacing name the R-L, A-P and S-I axes; --orientation then permutes the axes."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same phantom (default 0)")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), default=None,
                        help="voxels along R-L, A-P, S-I (default 48 48 128)")
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("X", "Y", "Z"), default=None,
                        help="voxel size in mm along R-L, A-P, S-I (default 1 1 1)")
    parser.add_argument("--orientation", default="RAS",
                        help='orientation code ("to" letters, e.g. RAS, LPS, PSR; default RAS)')
    parser.add_argument("--overwrite", action="store_true", help="replace existing phantom files in DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, reporter) -> int:
    from RootletSegLogic.images.orientation import validate_axcodes
    from RootletSegLogic.synthetic.phantom import make_phantom, write_phantom

    orientation = validate_axcodes(args.orientation)
    if args.seed < 0:
        raise UserError(f"The seed {args.seed} is negative: give a seed of 0 or more.")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"The output '{out}' is a file: give a folder for --out.")
    phantom = make_phantom(seed=args.seed, shape=args.shape, spacing=args.spacing, orientation=orientation)
    paths = write_phantom(phantom, out, overwrite=args.overwrite)
    reporter.result({name: str(path) for name, path in paths.items()})
    return 0
