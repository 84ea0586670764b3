"""A small BIDS dataset made of phantoms (`synthetic.phantom`), for tests, benchmarks and trying `batch`.

    <root>/dataset_description.json, participants.tsv
    <root>/sub-NN/anat/sub-NN_T2w.nii.gz
    <root>/derivatives/labels/sub-NN/anat/sub-NN_T2w_label-SC_seg.nii.gz       cord
                                          sub-NN_T2w_label-discs_dlabel.nii.gz disc labels (SCT values)
                                          sub-NN_T2w_label-PMJ_dlabel.nii.gz   PMJ (value 50)

Subjects listed in `without_derivatives` get no derivatives; those in `broken` get an image file cut short
(a damaged download), which the batch must report as failed. Subject N is phantom seed N.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Iterable

DERIVATIVE_NAMES = {"cord": "label-SC_seg", "discs": "label-discs_dlabel", "pmj": "label-PMJ_dlabel"}


def write_phantom_bids(root: os.PathLike | str, subjects: int = 4, without_derivatives: Iterable[int] = (),
                       broken: Iterable[int] = (), suffix: str = "T2w") -> Dict[str, Path]:
    """Write the dataset (see the module docstring) into a new or empty folder; returns {subject: image path}."""
    import SimpleITK as sitk

    from RootletSegLogic.synthetic.phantom import make_phantom

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "RootletSeg phantoms", "BIDSVersion": "1.9.0", "DatasetType": "raw"}, indent=2),
        encoding="utf-8")
    without, broken = set(without_derivatives), set(broken)
    lines = ["participant_id\theight"]
    images = {}
    for number in range(1, subjects + 1):
        subject = f"sub-{number:02d}"
        phantom = make_phantom(seed=number)
        anat = root / subject / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        stem = f"{subject}_{suffix}"
        image_path = anat / f"{stem}.nii.gz"
        sitk.WriteImage(phantom.image, str(image_path), True)
        if number in broken:
            data = image_path.read_bytes()
            image_path.write_bytes(data[: len(data) // 3])
        if number not in without:
            labels = root / "derivatives" / "labels" / subject / "anat"
            labels.mkdir(parents=True, exist_ok=True)
            for name, entity in DERIVATIVE_NAMES.items():
                sitk.WriteImage(getattr(phantom, name), str(labels / f"{stem}_{entity}.nii.gz"), True)
        lines.append(f"{subject}\t{165 + 3 * number}")
        images[subject] = image_path
    (root / "participants.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return images
