"""Plain-Python logic behind the Slicer panel: choices, validation, CLI arguments, file names, small conversions.

The Slicer module (RootletSeg/RootletSeg.py) keeps its Qt code thin and calls these functions, which are tested in
plain Python. No Qt or Slicer import here.

The enums below are the value types of the module's parameter node (`parameterNodeWrapper` stores an enum member
by its *name*, and a QComboBox shows each member's `label()`), so renaming a member breaks saved scenes.
"""

from __future__ import annotations

import enum
import os
import re
import sys
from pathlib import Path
from typing import Optional, Tuple

from RootletSegLogic.errors import UserError


class Contrast(enum.Enum):
    """Contrast of the input (informative: the RootletSeg model is multi-contrast; recorded with the results)."""

    T2w = "T2w"
    T1w_INV1 = "T1w-INV1"
    T1w_INV2 = "T1w-INV2"
    UNIT1 = "UNIT1"

    def label(self) -> str:
        return {"T2w": "T2w (3T TSE)", "T1w-INV1": "T1w-INV1 (7T MP2RAGE)",
                "T1w-INV2": "T1w-INV2 (7T MP2RAGE)", "UNIT1": "UNIT1 (7T MP2RAGE)"}[self.value]


class ModelChoice(enum.Enum):
    """Which nnU-Net model runs; the value is the `--model` registry name, or "" for a local zip/folder."""

    rootletseg = "rootletseg"
    m5 = "m5"
    demo = "demo"
    local = ""

    def label(self) -> str:
        return {
            "rootletseg": "RootletSeg (official, C2-T1, dorsal + ventral)",
            "m5": "M5 (T2w, C2-C8, dorsal only)",
            "demo": "Demo (synthetic phantoms only)",
            "": "Local model (zip or folder)...",
        }[self.value]


class Device(enum.Enum):
    auto = "auto"
    gpu = "gpu"
    cpu = "cpu"

    def label(self) -> str:
        return {"auto": "Auto (GPU if available)", "gpu": "GPU", "cpu": "CPU"}[self.value]


class LevelMethod(enum.Enum):
    paper = "paper"
    gapless = "gapless"

    def label(self) -> str:
        return {"paper": "Paper (rootlet entry zone)", "gapless": "Gap-free (caudal end to next level)"}[self.value]


# ------------------------------------------------------------------------------------------------ CLI arguments


def local_model_path(value) -> Optional[Path]:
    """A path parameter as set by a path widget, or None when empty (an empty path widget reads as '.')."""
    if value is None:
        return None
    text = str(value).strip()
    if text in ("", "."):
        return None
    return Path(text).expanduser()


def model_argument(choice: ModelChoice, local_path=None) -> str:
    """Value of `rootletseg segment --model` for a panel choice; UserError when a local model is not usable."""
    if choice is not ModelChoice.local:
        return choice.value
    path = local_model_path(local_path)
    if path is None:
        raise UserError("No local model is chosen: pick the model's zip file or folder, or choose a registry model.")
    if not path.exists():
        raise UserError(f"The local model '{path}' does not exist: pick an existing model zip file or folder.")
    if path.is_file() and path.suffix.lower() != ".zip":
        raise UserError(f"The local model '{path}' is neither a folder nor a .zip file: pick the model's zip or folder.")
    return str(path.resolve())


def cli_device(device: Device, platform: str = sys.platform) -> str:
    """Value of `rootletseg segment --device` for a panel choice (GPU = CUDA, Apple GPU = MPS on macOS)."""
    if device is Device.gpu:
        return "mps" if platform == "darwin" else "cuda"
    return device.value


def apply_problem(has_input_volume: bool, model: ModelChoice, local_path=None) -> Optional[str]:
    """Why Apply cannot run yet (a tooltip sentence), or None when it can."""
    if not has_input_volume:
        return "Select an input volume."
    if model is ModelChoice.local:
        try:
            model_argument(model, local_path)
        except UserError as error:
            return str(error)
    return None


# ------------------------------------------------------------------------------------------------ file names

EXPORT_SUFFIXES = {
    "labelmap": "_rootlets.nii.gz",  # SCT's suffix and label values (2 = C2 ... 9 = T1)
    "segmentation": "_rootlets.seg.nrrd",
    "table_tsv": "_levels.tsv",
    "table_csv": "_levels.csv",
    "planning_json": "_levels.json",
    "markups": "_level_bounds.mrk.json",
}

EXPORT_FILTERS = {
    "labelmap": "NIfTI label map (*.nii.gz)",
    "segmentation": "Slicer segmentation (*.seg.nrrd)",
    "table_tsv": "Tab-separated table (*.tsv)",
    "table_csv": "Comma-separated table (*.csv)",
    "planning_json": "Planning JSON (*.json)",
    "markups": "Slicer markups (*.mrk.json)",
}


def safe_stem(name: str, fallback: str = "volume") -> str:
    """A node name made safe as a file-name stem (letters, digits, '-', '_', '.'; no leading dot)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name or "").strip("._")
    return stem or fallback


def export_filename(volume_name: str, kind: str) -> str:
    """Default file name of an export `kind` (a key of EXPORT_SUFFIXES) for a volume node name."""
    if kind not in EXPORT_SUFFIXES:
        raise ValueError(f"unknown export kind {kind!r}; known: {sorted(EXPORT_SUFFIXES)}")
    return safe_stem(volume_name) + EXPORT_SUFFIXES[kind]


def segmentation_io_paths(work_dir: os.PathLike | str, volume_name: str) -> Tuple[Path, Path]:
    """(input image, output label map) paths inside a private temporary folder for one `segment` run."""
    work = Path(work_dir)
    stem = safe_stem(volume_name)
    return work / f"{stem}.nii.gz", work / f"{stem}_rootlets.nii.gz"


def export_path(dialog_path: os.PathLike | str, kind: str) -> Tuple[Path, bool]:
    """(path to write, whether the user must still confirm replacing it) for a path chosen in a save dialog.

    The dialog asked before replacing the path it returned; when the kind's extension has to be added, the final
    path is another file, which the dialog never checked: replacing it needs its own confirmation."""
    final = ensure_suffix(dialog_path, kind)
    return final, final != Path(dialog_path) and final.exists()


def ensure_suffix(path: os.PathLike | str, kind: str) -> Path:
    """The path a user typed in a save dialog, with the kind's extension added when it is missing."""
    p = Path(path)
    suffix = EXPORT_SUFFIXES[kind].split(".", 1)[1]
    if not p.name.lower().endswith("." + suffix):
        p = p.with_name(p.name + "." + suffix)
    return p


# ------------------------------------------------------------------------------------------------ conversions


# ------------------------------------------------------------------------------------------------ MRML pipeline
# These need MRML (desktop Slicer, or the slicer-core wheel in tests) but no Qt: the panel and the module's
# self-test call them, and Testing/Python runs them on a real scene.


def start_segmentation(
    volume_node,
    model: str,
    device: str = "auto",
    tta: bool = False,
    python: Optional[str] = None,
    grace_s: float = 5.0,
):
    """Export `volume_node` in world space (parent transforms applied) to a private temporary folder and start
    `rootletseg segment ... --progress json` on it. Returns the started `ChildProcess`; its temporary folder is
    removed on failure, on cancel, and by `close()`. `device` is a value of the CLI's --device option."""
    from RootletSegLogic.images.atomic import write_image
    from RootletSegLogic.slicer.child_command import child_environment, segment_command
    from RootletSegLogic.slicer.child_process import ChildProcess
    from RootletSegLogic.slicer.volumes import image_from_volume_node

    image = image_from_volume_node(volume_node)
    runner = ChildProcess([], env=child_environment(), grace_s=grace_s)
    work = runner.make_temporary_directory("rootletseg_segment_")
    input_path, output_path = segmentation_io_paths(work, volume_node.GetName())
    try:
        write_image(image, input_path, overwrite=True)
        runner.argv = segment_command(input_path, output_path, model, device=device, tta=tta, python=python)
        runner.output_path = output_path
        return runner.start()
    except BaseException:
        runner.close()
        raise


def segmentation_output(runner) -> Path:
    """The label map a finished, successful `start_segmentation` run wrote (UserError if it did not)."""
    if runner.returncode != 0:
        raise UserError(runner.error or f"The segmentation failed (exit code {runner.returncode}).")
    outputs = runner.result or {}
    path = Path(outputs.get("segmentation") or getattr(runner, "output_path", ""))
    if not path.is_file():
        raise UserError("The segmentation finished without writing its label map: see the log for details.")
    return path


def read_label_file(path, what: str = "label map"):
    """A label image file read with what Slicer ships (SimpleITK; no nibabel, which Slicer does not bundle and
    which arrives only with nnunetv2). Float files holding whole numbers are cast to int16."""
    import numpy as np
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise UserError(f"The {what} file '{path}' does not exist: check the path.")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise UserError(f"The {what} file '{path}' could not be read as an image: use NIfTI, NRRD or MetaImage.") from None
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise UserError(f"The {what} '{path.name}' is not a 3D scalar image: give a 3D label map.")
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(np.equal(np.mod(array, 1), 0)):
            raise UserError(f"The {what} '{path.name}' has non-integer values: give a label map (whole numbers).")
        image = sitk.Cast(image, sitk.sitkInt16)
    return image


def load_segmentation_result(segmentation_node, label_path, reference_volume_node) -> dict:
    """Read the label map the CLI wrote and show it as level segments in `segmentation_node` (user segments kept).
    Returns {label value: segment ID}."""
    from RootletSegLogic.slicer.segments import show_level_segments

    label_image = read_label_file(label_path, what="rootlet segmentation")
    return show_level_segments(segmentation_node, label_image, reference_volume_node)


def compute_scene_levels(
    segmentation_node,
    reference_volume_node,
    cord_segmentation_node=None,
    cord_segment_id: str = "",
    discs_node=None,
    method: str = "paper",
):
    """LevelResult from the scene: the level segments (with the user's edits), the cord segment when one is
    chosen, the disc points (and "PMJ") of a point list. The same computation as `rootletseg levels`."""
    from RootletSegLogic.levels.method import compute_levels
    from RootletSegLogic.slicer.level_nodes import disc_points_from_markups
    from RootletSegLogic.slicer.segments import (
        label_image_from_segments,
        mask_image_from_segment,
    )

    rootlets = label_image_from_segments(segmentation_node, reference_volume_node)
    cord = None
    if cord_segmentation_node is not None and cord_segment_id:
        cord = mask_image_from_segment(cord_segmentation_node, cord_segment_id, reference_volume_node)
    discs = disc_points_from_markups(discs_node) if discs_node is not None else None
    return compute_levels(rootlets, cord=cord, discs=discs, method=method)


def show_level_result(scene, result, table_node=None) -> dict:
    """Put a LevelResult in the scene: the level table node (given, or a new "RootletSeg levels" table) and the
    plot chart. Returns {"table": table node, "chart": chart node}."""
    from RootletSegLogic.slicer.level_nodes import (
        update_level_chart,
        update_level_table_node,
    )

    if table_node is None:
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", "RootletSeg levels")
    update_level_table_node(table_node, result)
    chart = update_level_chart(scene, result)
    return {"table": table_node, "chart": chart}


def import_disc_label_file(path, scene_or_node):
    """Read an SCT disc-label image (2 = C1/C2, 3 = C2/C3, ..., 50 = PMJ) into a "Discs" point list (a new one when
    given a scene, else the given node's points are replaced). Returns the markups node."""
    from RootletSegLogic.levels.discs import landmarks_from_label_image
    from RootletSegLogic.slicer.level_nodes import markups_from_disc_points

    image = read_label_file(path, what="disc label image")
    discs, pmj = landmarks_from_label_image(image)
    if not discs and pmj is None:
        raise UserError(f"The disc label image '{path}' holds no disc label: give the disc labels of this scan.")
    return markups_from_disc_points(scene_or_node, discs, pmj)


def export_label_map(segmentation_node, reference_volume_node, path, overwrite: bool = False) -> Path:
    """Write the level segments as one NIfTI label map with SCT values (2 = C2 ... 9 = T1) on the reference grid."""
    from RootletSegLogic.images.atomic import write_image
    from RootletSegLogic.slicer.segments import label_image_from_segments

    image = label_image_from_segments(segmentation_node, reference_volume_node)
    return write_image(image, path, overwrite=overwrite)


def export_segmentation(segmentation_node, path, overwrite: bool = False) -> Path:
    """Write the segmentation node as a Slicer `.seg.nrrd` (Slicer's own storage node: every segment, the level
    segments in one layer with label values 2 = C2 ... 9 = T1), atomically, never replacing a file unasked."""
    from RootletSegLogic.images.atomic import atomic_outputs
    from RootletSegLogic.images.files import absolute_path
    from RootletSegLogic.slicer.volumes import import_slicer

    slicer = import_slicer()
    if segmentation_node is None:
        raise UserError("There is no segmentation to export: run the segmentation first.")
    with atomic_outputs([path], overwrite) as (tmp,):
        storage = slicer.vtkMRMLSegmentationStorageNode()
        storage.SetFileName(str(tmp))
        if not storage.WriteData(segmentation_node):
            raise UserError(f"Could not write '{path}': check that the folder is writable.")
    return absolute_path(path)


def export_level_outputs(result, kind: str, path, overwrite: bool = False, provenance: Optional[dict] = None) -> Path:
    """Write one level export: kind "table_tsv", "table_csv", "planning_json" or "markups"."""
    from RootletSegLogic.images.atomic import write_text
    from RootletSegLogic.levels.planning import write_level_outputs
    from RootletSegLogic.levels.tables import level_table_csv

    if kind == "table_csv":
        return write_text(level_table_csv(result), path, overwrite=overwrite)
    argument = {"table_tsv": "tsv_path", "planning_json": "json_path", "markups": "markups_path"}.get(kind)
    if argument is None:
        raise ValueError(f"unknown level export kind {kind!r}")
    written = write_level_outputs(result, overwrite=overwrite, provenance=provenance, **{argument: path})
    return Path(next(iter(written.values())))


PHANTOM_SAMPLE_NAME = "RootletSeg phantom"
PHANTOM_SAMPLE_NOTE = "Synthetic cervical cord with rootlets C2-T1; the 'Demo' model is trained for it only."


def load_phantom(scene, seed: int = 0):
    """The synthetic phantom as a volume node "RootletSeg phantom" (the Sample Data entry; the demo model is made for
    it). Returns the volume node."""
    from RootletSegLogic.slicer.volumes import volume_node_from_image
    from RootletSegLogic.synthetic.phantom import make_phantom

    return volume_node_from_image(scene, make_phantom(seed=seed).image, PHANTOM_SAMPLE_NAME)


def load_cord_mask(scene, path):
    """A cord mask file (a 0/1 label map, or a .seg.nrrd) as a segmentation node; returns (node, first segment ID).
    Read with what Slicer ships (no nibabel)."""
    from RootletSegLogic.slicer.volumes import import_slicer, volume_node_from_image

    slicer = import_slicer()
    path = Path(path)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", path.name.split(".")[0])
    if path.name.lower().endswith(".seg.nrrd"):
        storage = slicer.vtkMRMLSegmentationStorageNode()
        storage.SetFileName(str(path))
        ok = storage.ReadData(node)
    else:
        label = volume_node_from_image(scene, read_label_file(path, "cord mask"), "cord", labelmap=True)
        try:
            ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(label, node)
        finally:
            scene.RemoveNode(label)
    if not ok or node.GetSegmentation().GetNumberOfSegments() == 0:
        scene.RemoveNode(node)
        raise UserError(f"The cord mask '{path}' is empty or unreadable: give the spinal cord mask of this scan.")
    return node, node.GetSegmentation().GetNthSegmentID(0)


def register_at_startup(terminology_logic, sample_data_logic=None, scene_getter=None, thumbnail=None) -> str:
    """What the module does at application start-up: load RootletSeg's terminology into Slicer's terminology logic
    (segments reference its context), and register the phantom in Sample Data (its loader makes the volume in
    `scene_getter()`). Returns the terminology context name."""
    from RootletSegLogic.slicer.terminology import register_terminology

    context = register_terminology(terminology_logic)
    if sample_data_logic is not None:
        sample_data_logic.registerCustomSampleDataSource(
            category="RootletSeg", sampleName=PHANTOM_SAMPLE_NAME, nodeNames=[PHANTOM_SAMPLE_NAME],
            thumbnailFileName=thumbnail, customDownloader=lambda source: load_phantom(scene_getter()))
    return context
