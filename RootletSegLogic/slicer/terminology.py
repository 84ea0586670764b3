"""RootletSeg's segmentation terminology (SNOMED codes) and its registration in Slicer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

# ------------------------------------------------------------------------------------------------ constants
TERMINOLOGY_DIR = Path(__file__).resolve().parent / "data"
TERMINOLOGY_FILE = TERMINOLOGY_DIR / "SegmentationCategoryTypeModifier-RootletSeg.json"


# --------------------------------------------------------------------------------------------------- terminology
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
    logic serializes after `register_terminology`.
    """
    meaning = {"rootlets": "Spinal nerve root", "cord": "Spinal cord"}.get(kind)
    if meaning is None:
        raise ValueError(f"unknown terminology kind {kind!r}: use 'rootlets' or 'cord'")
    data = _terminology_json()
    for category in data["SegmentationCodes"]["Category"]:
        for type_ in category["Type"]:
            if type_["CodeMeaning"] == meaning:
                context = data["SegmentationCategoryTypeContextName"]
                return "~".join([context, _code(category), _code(type_), "^^", "", "^^", "^^"])
    raise RuntimeError(f"'{meaning}' is missing from {TERMINOLOGY_FILE}")


def register_terminology(terminology_logic) -> str:
    """Load RootletSeg's terminology into a vtkSlicerTerminologiesModuleLogic (in Slicer:
    `slicer.modules.terminologies.logic()`), so Segment Editor's terminology selector knows the entries.
    Returns the context name. Loading twice is harmless."""
    name = terminology_logic.LoadTerminologyFromFile(str(TERMINOLOGY_FILE))
    if not name:
        raise RuntimeError(f"Slicer could not load the terminology file {TERMINOLOGY_FILE}")
    return name
