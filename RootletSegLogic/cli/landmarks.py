"""`rootletseg landmarks IMAGE`: spinal cord mask and SCT disc labels from a spine landmark model.

Arguments only: the work is `RootletSegLogic.pipeline.landmarks.find_landmarks`. Writes `<stem>_cord.nii.gz`
(0/1 on the input grid), `<stem>_discs.nii.gz` (SCT disc labels, one voxel per disc on the cord centerline) and
`<stem>_landmarks.json`: the files SCT users already have, so `rootletseg levels --cord --discs` takes them.
"""

from __future__ import annotations

import argparse

from RootletSegLogic.cli.main import add_progress_option
from RootletSegLogic.cli.segment import DEVICE_CHOICES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "landmarks",
        help="find the spinal cord and the intervertebral discs of an image (TotalSpineSeg step 1)",
        description="Find the spinal cord and the intervertebral discs of a 3D image with a spine landmark model "
        "(TotalSpineSeg's step-1 nnU-Net model, downloaded on first use, or the embedded demo-spine model). Writes "
        "<stem>_cord.nii.gz (cord mask on the input grid), <stem>_discs.nii.gz (SCT disc labels: 2 = C1/C2, "
        "3 = C2/C3, ..., one voxel per disc on the cord centerline) and <stem>_landmarks.json beside the input, or "
        "with the prefix -o. No PMJ is found: place it yourself.",
    )
    parser.add_argument("image", help="input image (.nii.gz, .nii, .nrrd, .mha)")
    parser.add_argument("-o", "--output-prefix", metavar="PREFIX",
                        help="output prefix (a folder, or folder/name): default the input's folder and stem")
    parser.add_argument("--model", default="totalspineseg",
                        help="landmark model: totalspineseg (default), demo-spine, or an nnU-Net v2 model folder/zip "
                        "with TotalSpineSeg's step-1 labels")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="where to run the network (default auto: cuda, else mps, else cpu)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the network (default: all CPUs)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, reporter) -> int:
    from RootletSegLogic.pipeline.landmarks import find_landmarks

    landmark_run = find_landmarks(args.image, args.output_prefix, model=args.model, device=args.device,
                                  threads=args.threads, overwrite=args.overwrite, progress=reporter,
                                  warn=reporter.warning)
    reporter.result(landmark_run.outputs)
    return 0
