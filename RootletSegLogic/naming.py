"""Every output naming rule of RootletSeg, in one place, so that the CLI, the demo and the Slicer module name
files alike.

    sub-01_T2w_0000.nii.gz        an input image (nnU-Net's channel suffix `_0000` is not part of the stem)
    sub-01_T2w_rootlets.nii.gz    its rootlet label map                      (segmentation_path)
    sub-01_T2w_rootlets.json      the label map's sidecar                    (sidecar_path)
    sub-01_T2w_levels.tsv         level table; levels are named after the label map without `_rootlets`
    sub-01_T2w_levels.json        planning JSON
    sub-01_T2w_levels.mrk.json    Slicer markups with the level bounds
    sub-01_T2w_pairings.tsv       vertebral/spinal pairings
    sub-01_T2w_levels.nii.gz      spinal level label image (only with a cord mask)
    level_chart.png/.svg, qc_sagittal.png/.svg   the demo's figures
    sub-01_T2w_cord.nii.gz        cord mask found by `landmarks` / `run`     (landmark_paths)
    sub-01_T2w_discs.nii.gz       SCT disc labels found by them
    sub-01_T2w_landmarks.json     their sidecar
    sub-01_T2w_level_chart.png/.svg, sub-01_T2w_qc_sagittal.png/.svg   the figures of `run` (run_figure_bases)

Only names are made here: nothing is read or written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from RootletSegLogic.images.files import IMAGE_SUFFIXES

PathLike = Union[str, os.PathLike]

CHANNEL_SUFFIX = "_0000"  # nnU-Net's "first input channel" suffix, which users often keep on their files
ROOTLETS_SUFFIX = "_rootlets"
SEGMENTATION_EXTENSION = ".nii.gz"
WRITABLE_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")  # what SimpleITK writes and users asked for
LEVEL_SUFFIXES = {  # LevelOutputs field -> suffix after the stem
    "table": "_levels.tsv",
    "planning_json": "_levels.json",
    "markups": "_levels.mrk.json",
    "pairings": "_pairings.tsv",
    "label_image": "_levels.nii.gz",
}
LANDMARK_SUFFIXES = {"cord": "_cord.nii.gz", "discs": "_discs.nii.gz", "sidecar": "_landmarks.json"}
DEMO_IMAGE_STEM = "image"  # the phantom's image is `image.nii.gz` (synthetic.phantom.write_phantom)
DEMO_FIGURES = ("level_chart", "qc_sagittal")
FIGURE_EXTENSIONS = (".png", ".svg")


def image_stem(path: PathLike) -> str:
    """File name without its image suffix (.nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd) and without `_0000`."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name.endswith(CHANNEL_SUFFIX):
        name = name[: -len(CHANNEL_SUFFIX)]
    return name


def segmentation_path(input_path: PathLike) -> Path:
    """`<stem>_rootlets.nii.gz` beside the input image."""
    input_path = Path(input_path)
    return input_path.parent / f"{image_stem(input_path)}{ROOTLETS_SUFFIX}{SEGMENTATION_EXTENSION}"


def sidecar_path(segmentation: PathLike) -> Path:
    """The JSON sidecar of a label map: same folder, same stem, `.json`."""
    segmentation = Path(segmentation)
    return segmentation.parent / f"{image_stem(segmentation)}.json"


def is_writable_image_name(path: PathLike) -> bool:
    """True when the file name ends with an image suffix the segment workflow can write."""
    return Path(path).name.lower().endswith(WRITABLE_IMAGE_SUFFIXES)


def level_stem(segmentation: PathLike) -> str:
    """The stem level outputs are named with: the label map's stem without `_rootlets`
    (`sub-01_rootlets.nii.gz` -> `sub-01`); a stem that is only `_rootlets` is kept whole."""
    stem = image_stem(segmentation)
    if stem.endswith(ROOTLETS_SUFFIX) and len(stem) > len(ROOTLETS_SUFFIX):
        stem = stem[: -len(ROOTLETS_SUFFIX)]
    return stem


def level_paths(folder: PathLike, stem: str, with_label_image: bool) -> Dict[str, Optional[Path]]:
    """{LevelOutputs field: path} in `folder`; `label_image` is None without a cord mask (it marks cord voxels)."""
    folder = Path(folder)
    paths = {name: folder / f"{stem}{suffix}" for name, suffix in LEVEL_SUFFIXES.items()}
    if not with_label_image:
        paths["label_image"] = None
    return paths


def level_paths_for_segmentation(segmentation: PathLike, with_label_image: bool) -> Dict[str, Optional[Path]]:
    """Level outputs beside a label map and named after it: `sub-01_rootlets.nii.gz` -> `sub-01_levels.tsv`, ..."""
    return level_paths(Path(segmentation).parent, level_stem(segmentation), with_label_image)


def demo_figure_bases(out_dir: PathLike) -> Dict[str, Path]:
    """{figure name: path without extension} of the demo's figures; each is written as .png and .svg."""
    return {name: Path(out_dir) / name for name in DEMO_FIGURES}


def figure_paths(base: PathLike) -> List[Path]:
    """The files one figure is written to: `<base>.png`, `<base>.svg`."""
    base = Path(base)
    return [base.with_suffix(extension) for extension in FIGURE_EXTENSIONS]


def demo_image_path(out_dir: PathLike) -> Path:
    """The phantom image the demo segments."""
    return Path(out_dir) / f"{DEMO_IMAGE_STEM}.nii.gz"


def segment_outputs(input_path: PathLike, output: Optional[PathLike]) -> Tuple[Path, Path]:
    """(label map, sidecar) of one `segment` run: `output` or the default beside the input, and its sidecar."""
    labels = Path(output) if output is not None else segmentation_path(input_path)
    return labels, sidecar_path(labels)


def landmark_paths(input_path: PathLike, prefix: Optional[PathLike] = None) -> Dict[str, Path]:
    """{"cord", "discs", "sidecar"}: `<prefix>_cord.nii.gz`, `<prefix>_discs.nii.gz`, `<prefix>_landmarks.json`.

    `prefix` None: the input's folder and stem (`sub-01_T2w_0000.nii.gz` -> `sub-01_T2w_cord.nii.gz`); an existing
    folder (or a name ending with a separator): that folder and the input's stem; else a path prefix."""
    if prefix is None:
        base = Path(input_path).parent / image_stem(input_path)
    elif Path(prefix).is_dir() or str(prefix).endswith(("/", os.sep)):
        base = Path(prefix) / image_stem(input_path)
    else:
        base = Path(prefix)
    return {name: base.parent / f"{base.name}{suffix}" for name, suffix in LANDMARK_SUFFIXES.items()}


def run_figure_bases(out_dir: PathLike, stem: str) -> Dict[str, Path]:
    """{figure name: path without extension} of `run`'s figures: `<stem>_level_chart`, `<stem>_qc_sagittal`."""
    return {name: Path(out_dir) / f"{stem}_{name}" for name in DEMO_FIGURES}
