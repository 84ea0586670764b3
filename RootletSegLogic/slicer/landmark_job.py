"""The panel's "Detect cord and discs": `rootletseg landmarks` in a child process (progress, cancel, one-sentence
errors, as Apply), then the cord as a segment and the discs as the named "Discs" point list, ready to move.

The volume is exported in world space into the child's private temporary folder (as Apply's export); the child
writes `<volume>_cord.nii.gz` and `<volume>_discs.nii.gz` there; they are loaded with what Slicer ships (no
nibabel). A PMJ point the user placed in the disc list is kept: the PMJ is never found automatically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

from RootletSegLogic.errors import UserError

DEFAULT_LANDMARK_MODEL = "totalspineseg"
PMJ_LABEL = "PMJ"


def landmarks_command(input_path, prefix, model: str, device: str = "auto", python: Optional[str] = None) -> list:
    """Command line of `rootletseg landmarks IMAGE -o PREFIX --model M --device D --overwrite --progress json`
    (`--overwrite`: the outputs are in the child's private temporary folder)."""
    from RootletSegLogic.slicer.child_command import rootletseg_command

    return rootletseg_command(["landmarks", str(input_path), "-o", str(prefix), "--model", str(model),
                               "--device", device, "--overwrite", "--progress", "json"], python)


def start_landmark_detection(volume_node, model: str = DEFAULT_LANDMARK_MODEL, device: str = "auto",
                             python: Optional[str] = None, grace_s: float = 5.0):
    """Export `volume_node` (world space) and start `rootletseg landmarks` on it; returns the started ChildProcess
    (its temporary folder is removed on failure, on cancel and by `close()`)."""
    from RootletSegLogic.images.atomic import write_image
    from RootletSegLogic.slicer.child_command import child_environment
    from RootletSegLogic.slicer.child_process import ChildProcess
    from RootletSegLogic.slicer.session import safe_stem
    from RootletSegLogic.slicer.volumes import image_from_volume_node

    image = image_from_volume_node(volume_node)
    runner = ChildProcess([], env=child_environment(), grace_s=grace_s)
    work = Path(runner.make_temporary_directory("rootletseg_landmarks_"))
    stem = safe_stem(volume_node.GetName())
    input_path = work / f"{stem}.nii.gz"
    try:
        write_image(image, input_path, overwrite=True)
        runner.argv = landmarks_command(input_path, work / stem, model, device, python)
        return runner.start()
    except BaseException:
        runner.close()
        raise


def landmark_outputs(runner) -> Tuple[Path, Path]:
    """(cord mask, disc labels) a finished, successful detection wrote (UserError with the child's sentence if not)."""
    if runner.returncode != 0:
        raise UserError(runner.error or f"The cord and disc detection failed (exit code {runner.returncode}).")
    outputs = runner.result or {}
    cord, discs = Path(outputs.get("cord", "")), Path(outputs.get("discs", ""))
    if not (cord.is_file() and discs.is_file()):
        raise UserError("The detection finished without writing the cord and discs: see the log for details.")
    return cord, discs


def _user_pmj(discs_node):
    """RAS position of a control point labelled PMJ in the disc list, or None."""
    if discs_node is None:
        return None
    for index in range(discs_node.GetNumberOfControlPoints()):
        if discs_node.GetNthControlPointLabel(index).strip().upper() == PMJ_LABEL:
            position = [0.0, 0.0, 0.0]
            discs_node.GetNthControlPointPositionWorld(index, position)
            return tuple(position)
    return None


def load_landmarks(scene, params, runner) -> str:
    """Show a detection's result: the cord as a new segmentation chosen as the cord, the discs in the disc list
    (replacing its discs, keeping the user's PMJ). Returns the status text."""
    from RootletSegLogic.levels.discs import landmarks_from_label_image
    from RootletSegLogic.slicer.level_nodes import markups_from_disc_points
    from RootletSegLogic.slicer.session import load_cord_mask, read_label_file

    cord_path, discs_path = landmark_outputs(runner)
    discs, _ = landmarks_from_label_image(read_label_file(discs_path, what="disc label image"))
    node, segment_id = load_cord_mask(scene, cord_path)
    params.cordSegmentation, params.cordSegmentId = node, segment_id
    pmj = _user_pmj(params.discs)
    params.discs = markups_from_disc_points(params.discs if params.discs is not None else scene, discs, pmj)
    names = ", ".join(disc.name for disc in discs)
    return f"Found the cord and {len(discs)} discs ({names}); move a point to correct it."
