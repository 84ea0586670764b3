"""RootletSeg's terminology registered in Slicer; the terminology data itself is Slicer-free (`levels/terminology.py`)."""

from __future__ import annotations

from RootletSegLogic.levels.terminology import (  # noqa: F401  (re-exported for the Slicer adapters)
    TERMINOLOGY_DIR,
    TERMINOLOGY_FILE,
    terminology_entry_string,
    terminology_file,
)


def register_terminology(terminology_logic) -> str:
    """Load RootletSeg's terminology into a vtkSlicerTerminologiesModuleLogic (in Slicer:
    `slicer.modules.terminologies.logic()`), so Segment Editor's terminology selector knows the entries.
    Returns the context name. Loading twice is harmless."""
    name = terminology_logic.LoadTerminologyFromFile(str(TERMINOLOGY_FILE))
    if not name:
        raise RuntimeError(f"Slicer could not load the terminology file {TERMINOLOGY_FILE}")
    return name
