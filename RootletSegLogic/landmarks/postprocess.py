"""From a step-1 label map (TotalSpineSeg's scheme, `scheme.py`) to the files SCT users have: a binary cord mask and
SCT disc labels, one voxel per disc on the cord centerline.

The steps follow what TotalSpineSeg documents for its step-1 postprocessing (re-implemented here with NumPy/SciPy;
its package imports torch, torchio and kornia at import time and works folder to folder, see docs/landmarks.md):

1. Cord: the largest connected component of the cord value (9). TotalSpineSeg also keeps the largest cord
   component; its soft cord (a probability) thresholded at 0.5 is the argmax label we start from.
2. Discs: connected components of the disc values (1..5); fragments under `MIN_DISC_VOLUME_MM3` or under
   `MIN_DISC_FRACTION_OF_MEDIAN` of the median component's volume are dropped (a warning says how many). A
   component is a landmark disc (C2/C3, C7/T1, T12/L1, L5/S1) when its landmark voxels are the majority. Discs are
   ordered from superior to inferior and named by counting from the nearest landmark (TotalSpineSeg's iterative
   labelling also starts from these landmarks; priority C2/C3, L5/S1, C7/T1, T12/L1 as its defaults).
3. Position: like TotalSpineSeg's `step1_levels`, the disc's posterior tip (here the mean, over the disc's axial
   slices, of each slice's voxel nearest to the centerline: the posterior rim over the disc's whole height), then put on
   the cord centerline -- the centerline point nearest to the tip, one voxel -- because that is where the level
   method projects discs anyway. When two discs claim one landmark, the one with more landmark voxels keeps it.
4. C1/C2 when no disc lies above C2/C3 (real anatomy has none; the phantom draws one): with the C1 vertebra
   visible (>= `MIN_C1_VOLUME_MM3`), the midpoint between the top of the vertebra under C1 (the dens of C2) and the
   C2/C3 disc, as TotalSpineSeg's extract_levels does, put on the centerline. Label 1 (top of C1) is not made.

Everything is computed in RAS orientation (no resampling: `Reorientation`), distances in mm, and the outputs are
restored onto exactly the input grid. No PMJ comes out (TotalSpineSeg has none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.orientation import Reorientation
from RootletSegLogic.images.world import lps_to_ras
from RootletSegLogic.landmarks import scheme
from RootletSegLogic.levels.types import DISC_NAMES, DiscPoint

WORK_ORIENTATION = "RAS"  # "to" letters: NumPy (z, y, x) = (S, A, R) increasing
MIN_DISC_VOLUME_MM3 = 15.0
CENTERLINE_SMOOTHING_MM = 5.0
MIN_DISC_FRACTION_OF_MEDIAN = 0.2  # a disc is at least this fraction of the median disc component's volume
MIN_C1_VOLUME_MM3 = 500.0  # TotalSpineSeg's "C1 visible enough" heuristic: 500 voxels of its 1 mm grid
LANDMARK_PRIORITY = (scheme.DISC_C2_C3, scheme.DISC_L5_S, scheme.DISC_C7_T1, scheme.DISC_T12_L1)


@dataclass
class Landmarks:
    """Cord and discs found in one image, on exactly its grid.

    cord: uint8 0/1 mask; discs: uint8 SCT disc labels (2 = C1/C2, 3 = C2/C3, ...), one voxel each on the cord
    centerline; disc_points: the same discs as DiscPoint (voxel centre, RAS mm), superior first; spine: the step-1
    label map the model wrote; warnings: sentences for the user.
    """

    cord: sitk.Image
    discs: sitk.Image
    disc_points: List[DiscPoint]
    spine: sitk.Image
    warnings: List[str] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-ready: cord volume (mm3), discs {SCT value: {name, position_ras}}, warnings."""
        voxel_mm3 = float(np.prod(self.cord.GetSpacing()))
        cord_voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(self.cord)))
        return {
            "cord_volume_mm3": round(cord_voxels * voxel_mm3, 1),
            "discs": {str(p.value): {"name": p.name, "position_ras": [round(c, 3) for c in p.position_ras]}
                      for p in self.disc_points},
            "pmj": None,
            "warnings": list(self.warnings),
        }


# ------------------------------------------------------------------------------------------------- centerline
class Centerline:
    """Per axial slice (RAS k), the centre of the cord (else of the canal) in mm of the RAS-oriented grid's index
    space scaled by spacing: points_mm[n] = (x_mm, y_mm, z_mm) of slice slices[n]; voxels[n] = its (k, j, i).

    The centres are smoothed along S (Gaussian, sigma `CENTERLINE_SMOOTHING_MM`), as SCT and TotalSpineSeg smooth
    theirs: a disc's posterior tip lies 5-10 mm from the centerline, where the slice-to-slice jitter of voxelised
    centres would tilt the perpendicular projection by a millimetre or more."""

    def __init__(self, cord_zyx: np.ndarray, canal_zyx: np.ndarray, spacing_xyz):
        self.spacing = np.asarray(spacing_xyz, dtype=float)
        slices, points = [], []
        for k in range(cord_zyx.shape[0]):
            mask = cord_zyx[k] if cord_zyx[k].any() else canal_zyx[k]
            if not mask.any():
                continue
            j, i = np.nonzero(mask)
            ci, cj = float(i.mean()), float(j.mean())
            slices.append(k)
            points.append((ci * self.spacing[0], cj * self.spacing[1], k * self.spacing[2]))
        if not slices:
            raise UserError("The landmark model found no spinal cord or canal: check that the image shows the "
                            "cervical spine, or give the cord and discs yourself.")
        self.slices = np.array(slices)
        self.points_mm = np.array(points)
        sigma = CENTERLINE_SMOOTHING_MM / self.spacing[2]
        for axis in (0, 1):
            self.points_mm[:, axis] = ndimage.gaussian_filter1d(self.points_mm[:, axis], sigma, mode="nearest")
        self.voxels = np.array([(k, int(round(y / self.spacing[1])), int(round(x / self.spacing[0])))
                                for x, y, k in zip(self.points_mm[:, 0], self.points_mm[:, 1], self.slices)])

    def nearest(self, point_mm: np.ndarray) -> int:
        """Index (into points_mm) of the centerline point nearest to `point_mm`."""
        return int(np.argmin(np.linalg.norm(self.points_mm - point_mm, axis=1)))


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labelled, count = ndimage.label(mask)
    if count <= 1:
        return mask.copy()
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled == int(np.argmax(sizes))


# ------------------------------------------------------------------------------------------------------ discs
@dataclass
class _DiscComponent:
    voxels: np.ndarray  # (n, 3) k, j, i
    landmark: Optional[int]  # step-1 landmark value or None
    landmark_voxels: int  # voxels of that landmark value
    tip_mm: np.ndarray  # posterior tip, mm
    centerline_index: int


def _disc_components(spine: np.ndarray, centerline: Centerline, warnings: List[str]) -> List[_DiscComponent]:
    spacing = centerline.spacing
    voxel_mm3 = float(np.prod(spacing))
    labelled, count = ndimage.label(np.isin(spine, scheme.DISC_VALUES_STEP1))
    sizes = np.bincount(labelled.ravel(), minlength=count + 1)[1:]
    big = sizes[sizes * voxel_mm3 >= MIN_DISC_VOLUME_MM3]
    typical = float(np.median(big)) if big.size else 0.0
    min_voxels = max(MIN_DISC_VOLUME_MM3 / voxel_mm3, MIN_DISC_FRACTION_OF_MEDIAN * typical)
    components, specks = [], 0
    for index, region in enumerate(ndimage.find_objects(labelled), start=1):
        if region is None:
            continue
        if sizes[index - 1] < min_voxels:
            specks += 1
            continue
        local = labelled[region] == index
        voxels = np.argwhere(local) + np.array([s.start for s in region])
        values = spine[tuple(voxels.T)]
        landmark_counts = {v: int(np.count_nonzero(values == v)) for v in LANDMARK_PRIORITY}
        best = max(landmark_counts, key=landmark_counts.get)
        landmark = best if landmark_counts[best] * 2 > len(voxels) else None
        mm = voxels[:, ::-1] * spacing  # (i, j, k) * spacing = (x, y, z) mm
        distances = np.min(np.linalg.norm(mm[:, None, :] - centerline.points_mm[None, :, :], axis=2), axis=1)
        # the posterior rim over the disc's whole height: in each axial slice, the voxel nearest to the centerline
        rim = [np.flatnonzero(voxels[:, 0] == k)[np.argmin(distances[voxels[:, 0] == k])]
               for k in np.unique(voxels[:, 0])]
        tip = mm[rim].mean(axis=0)
        components.append(_DiscComponent(voxels, landmark, landmark_counts[best], tip, centerline.nearest(tip)))
    if specks:
        warnings.append(f"{specks} disc fragment(s) under {min_voxels * voxel_mm3:.0f} mm3 were ignored.")
    components.sort(key=lambda c: -c.tip_mm[2])  # superior first
    return components


def _name_discs(components: List[_DiscComponent], warnings: List[str]) -> Dict[int, _DiscComponent]:
    """{SCT value: component}, counting from the nearest landmark disc (in order along the spine)."""
    anchors = {}  # order index -> SCT value
    for value in LANDMARK_PRIORITY:
        claimed = [n for n, c in enumerate(components) if c.landmark == value]
        if claimed:
            largest = max(claimed, key=lambda n: components[n].landmark_voxels)
            anchors[largest] = scheme.LANDMARK_SCT_LABEL[value]
    if not anchors:
        raise UserError("The landmark model found no landmark disc (C2/C3, C7/T1, T12/L1 or L5/S1), so the discs "
                        "cannot be named: place the disc points yourself (--discs or --disc-points).")
    ordered = sorted(anchors.items())
    for (n1, v1), (n2, v2) in zip(ordered, ordered[1:]):
        if v2 - v1 != n2 - n1:
            warnings.append(f"The landmark discs {DISC_NAMES.get(v1)} and {DISC_NAMES.get(v2)} are {n2 - n1} discs "
                            f"apart instead of {v2 - v1}: a disc was missed or split; check the disc names.")
    named = {}
    for n, component in enumerate(components):
        anchor_n = min(anchors, key=lambda a: (abs(a - n), a))
        value = anchors[anchor_n] + (n - anchor_n)
        if scheme.SCT_C1_C2 <= value <= scheme.SCT_LAST_DISC and value not in named:
            named[value] = component
    return named


def _c1_c2_from_vertebrae(spine: np.ndarray, c2_c3: _DiscComponent, centerline: Centerline) -> Optional[int]:
    """Centerline index of C1/C2 from the vertebrae (see the module docstring, step 4), or None."""
    spacing = centerline.spacing
    c1 = spine == scheme.VERTEBRA_C1
    if np.count_nonzero(c1) * float(np.prod(spacing)) < MIN_C1_VOLUME_MM3:
        return None
    c1_top_k = int(np.nonzero(c1.any(axis=(1, 2)))[0].max())
    tip_i = int(round(c2_c3.tip_mm[0] / spacing[0]))
    plane = spine[: c1_top_k + 1, :, tip_i] == scheme.VERTEBRA  # the disc's sagittal plane, under the top of C1
    if not plane.any():
        return None
    k, j = np.argwhere(plane)[np.argmax(np.argwhere(plane)[:, 0])]
    top_of_c2_mm = np.array([tip_i * spacing[0], j * spacing[1], k * spacing[2]])
    return centerline.nearest(0.5 * (top_of_c2_mm + c2_c3.tip_mm))


# ------------------------------------------------------------------------------------------------------- main
def landmarks_from_step1(spine: sitk.Image) -> Landmarks:
    """Cord mask and SCT disc labels (on `spine`'s grid) from a step-1 label map; see the module docstring.

    UserError when there is no cord/canal, no disc or no landmark disc to name the discs from.
    """
    warnings: List[str] = []
    reorientation = Reorientation(spine, WORK_ORIENTATION)
    oriented = reorientation.apply(spine)
    labels = sitk.GetArrayFromImage(oriented)
    spacing = oriented.GetSpacing()
    cord = _largest_component(labels == scheme.CORD)
    if not cord.any():
        raise UserError("The landmark model found no spinal cord in the image: check that it is a T2w (or similar) "
                        "image of the cervical spine, or give the cord mask yourself (--cord).")
    canal = np.isin(labels, (scheme.CANAL, scheme.CORD))
    centerline = Centerline(cord, canal, spacing)
    components = _disc_components(labels, centerline, warnings)
    if not components:
        raise UserError("The landmark model found no intervertebral disc in the image: place the disc points "
                        "yourself (--discs or --disc-points).")
    named_components = _name_discs(components, warnings)
    named = {value: c.centerline_index for value, c in named_components.items()}
    if scheme.SCT_C1_C2 not in named and 3 in named:
        index = _c1_c2_from_vertebrae(labels, named_components[3], centerline)
        if index is not None and index != named[3]:
            named[scheme.SCT_C1_C2] = index

    discs = np.zeros(labels.shape, dtype=np.uint8)
    voxels: List[Tuple[int, Tuple[int, int, int]]] = []
    for value, index in sorted(named.items()):
        k, j, i = (int(v) for v in centerline.voxels[index])
        if discs[k, j, i]:
            warnings.append(f"Discs {DISC_NAMES.get(int(discs[k, j, i]))} and {DISC_NAMES.get(value)} fall on one "
                            f"voxel; {DISC_NAMES.get(value)} was dropped.")
            continue
        discs[k, j, i] = value
        voxels.append((value, (i, j, k)))
    points = [DiscPoint(value, tuple(float(c) for c in lps_to_ras(oriented.TransformIndexToPhysicalPoint(ijk))))
              for value, ijk in voxels]
    return Landmarks(
        cord=_restored(cord.astype(np.uint8), oriented, reorientation),
        discs=_restored(discs, oriented, reorientation),
        disc_points=points,
        spine=spine,
        warnings=warnings,
    )


def _restored(array_zyx: np.ndarray, oriented: sitk.Image, reorientation: Reorientation) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_zyx))
    image.CopyInformation(oriented)
    return reorientation.restore(image)
