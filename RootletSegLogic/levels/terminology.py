"""RootletSeg's segmentation terminology (SNOMED CT codes), readable without Slicer.

The terminology file (a Slicer segment-context JSON, package data in `levels/data/`) and the serialized entry that
segments carry ("TerminologyEntry" tag) are used by the `.seg.nrrd` writer of the command line
(`images/seg_nrrd.py`) and by the Slicer adapters alike; loading the file into Slicer's terminology logic is the
Slicer face's job (`slicer/terminology.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

TERMINOLOGY_DIR = Path(__file__).resolve().parent / "data"
TERMINOLOGY_FILE = TERMINOLOGY_DIR / "SegmentationCategoryTypeModifier-RootletSeg.json"
TERMINOLOGY_MEANINGS = {"rootlets": "Spinal nerve root", "cord": "Spinal cord"}


def terminology_file() -> Path:
    """The Slicer terminology JSON (segment context schema) RootletSeg carries: spinal nerve root, spinal cord."""
    return TERMINOLOGY_FILE


def _terminology_json() -> dict:
    return json.loads(TERMINOLOGY_FILE.read_text(encoding="utf-8"))


def _code(entry: Optional[dict]) -> str:
    if not entry:
        return "^^"
    return f"{entry['CodingSchemeDesignator']}^{entry['CodeValue']}^{entry['CodeMeaning']}"


def terminology_entry_string(kind: str = "rootlets") -> str:
    """Slicer's serialized terminology entry (the segment tag "TerminologyEntry") for `kind` "rootlets" or "cord".

    Format: context~category~type~typeModifier~anatomicContext~anatomicRegion~regionModifier, each code as
    `scheme^value^meaning` (SNOMED CT: 69733000 "Spinal nerve root", 2748008 "Spinal cord", category 123037004
    "Anatomical Structure"). Built from RootletSeg's terminology file, so it matches what Slicer's terminology
    logic serializes once the file is loaded (`slicer.terminology.register_terminology`).
    """
    meaning = TERMINOLOGY_MEANINGS.get(kind)
    if meaning is None:
        raise ValueError(f"unknown terminology kind {kind!r}: use 'rootlets' or 'cord'")
    data = _terminology_json()
    for category in data["SegmentationCodes"]["Category"]:
        for type_ in category["Type"]:
            if type_["CodeMeaning"] == meaning:
                context = data["SegmentationCategoryTypeContextName"]
                return "~".join([context, _code(category), _code(type_), "^^", "", "^^", "^^"])
    raise RuntimeError(f"'{meaning}' is missing from {TERMINOLOGY_FILE}")


__all__ = ["TERMINOLOGY_DIR", "TERMINOLOGY_FILE", "terminology_entry_string", "terminology_file"]
