"""TotalSpineSeg's step-1 label scheme (the values a step-1 model writes) and SCT's disc-label convention.

TotalSpineSeg (neuropoly/totalspineseg, LGPL-3) trains its step-1 nnU-Net model (`Dataset101_TotalSpineSeg_step1`)
on regions; after nnU-Net's `regions_class_order` each voxel holds one of these values (its
`resources/datasets/dataset_step1.json`):

    0 background, 1 intervertebral disc (any), 2 disc C2-C3, 3 disc C7-T1, 4 disc T12-L1, 5 disc L5-S,
    6 vertebra (any, sacrum included), 7 vertebra C1, 8 spinal canal (CSF part), 9 spinal cord.

Values 2..5 are landmark discs: a disc voxel of value 1 gets its name from its order along the spine relative to a
landmark. The demo-spine model of this project writes the same values (plain softmax classes, no regions).

SCT disc labels: 1 = top of C1, 2 = C1/C2, 3 = C2/C3, ..., 8 = C7/T1, 9 = T1/T2, ..., 20 = T12/L1, ..., 25 = L5/S1.
"""

from __future__ import annotations

from typing import Dict

BACKGROUND = 0
DISC = 1
DISC_C2_C3 = 2
DISC_C7_T1 = 3
DISC_T12_L1 = 4
DISC_L5_S = 5
VERTEBRA = 6
VERTEBRA_C1 = 7
CANAL = 8
CORD = 9

STEP1_LABELS: Dict[str, int] = {
    "background": BACKGROUND, "disc": DISC, "disc_C2_C3": DISC_C2_C3, "disc_C7_T1": DISC_C7_T1,
    "disc_T12_L1": DISC_T12_L1, "disc_L5_S": DISC_L5_S, "vertebrae": VERTEBRA, "vertebrae_C1": VERTEBRA_C1,
    "canal": CANAL, "cord": CORD,
}
DISC_VALUES_STEP1 = (DISC, DISC_C2_C3, DISC_C7_T1, DISC_T12_L1, DISC_L5_S)

# landmark value -> SCT disc label of that disc
LANDMARK_SCT_LABEL: Dict[int, int] = {DISC_C2_C3: 3, DISC_C7_T1: 8, DISC_T12_L1: 20, DISC_L5_S: 25}
SCT_LANDMARK_VALUE: Dict[int, int] = {sct: value for value, sct in LANDMARK_SCT_LABEL.items()}
SCT_TOP_OF_C1 = 1
SCT_C1_C2 = 2
SCT_LAST_DISC = 25  # L5/S1


def step1_value_for_sct_disc(sct_label: int) -> int:
    """The step-1 value a disc with this SCT label carries: its landmark value, else the generic disc value 1."""
    return SCT_LANDMARK_VALUE.get(int(sct_label), DISC)
