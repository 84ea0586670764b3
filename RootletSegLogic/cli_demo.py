"""`rootletseg demo`: the whole pipeline, offline, on a synthetic phantom with the embedded demo model.

1. Make the phantom (`phantom.make_phantom`) and write it (image, true rootlets, cord, discs, PMJ, truth.json).
2. Segment the phantom image with the `demo` model through `inference.segment_file`, the same code path as the
   real models (registry resolution, orientation, nnU-Net, label map + sidecar).
3. (Later) spinal levels from the segmentation and the phantom's cord: the level table goes here.
Prints where everything went.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli import add_progress_option


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
    from .errors import UserError
    from .inference import default_output_path, resolve_model, segment_file, sidecar_path_for
    from .phantom import make_phantom, write_phantom
    from .progress import ProgressEvent

    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"The demo output '{out_dir}' is a file: give a folder.")
    # The segmentation outputs are checked before anything is made or written, so a second run without
    # --overwrite fails at once and changes nothing.
    image_path = (out_dir / "image.nii.gz").absolute()
    if not args.overwrite:
        for path in (default_output_path(image_path), sidecar_path_for(default_output_path(image_path))):
            if path.exists():
                raise UserError(f"The output '{path}' already exists: choose another --out or pass --overwrite.")
    model = resolve_model("demo", progress=reporter, warn=reporter.warning)  # a missing model fails before writing
    reporter(ProgressEvent("phantom", 0, 1, f"seed {args.seed}"))
    phantom = make_phantom(seed=args.seed)
    written = {f"phantom_{name}": str(path) for name, path in write_phantom(phantom, out_dir, args.overwrite).items()}
    reporter(ProgressEvent("phantom", 1, 1, str(out_dir)))
    outputs = segment_file(written["phantom_image"], model=model, overwrite=args.overwrite,
                           progress=reporter, warn=reporter.warning, threads=args.threads)
    outputs.update(written)
    # Levels: the spinal-level table (from outputs["segmentation"] and outputs["phantom_cord"]) is added here by
    # the levels work; until then the demo stops at the segmentation.
    reporter.result(outputs)
    return 0
