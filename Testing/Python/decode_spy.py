"""Count, per file, how often a command decodes voxels, reads headers, hashes or otherwise reads, and whether it
reads back a file it wrote. In-process spies on SimpleITK, nibabel and `open`; used by test_one_pass.py.

Run as a script to print the counts of `rootletseg segment --model demo --cord --discs --pmj` on a phantom (the
same script measured the tree before the one-pass change: `PYTHONPATH=<old tree> python decode_spy.py`).
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple


def final_name(path) -> str:
    """The output a temporary of `images.atomic` stands for (`.<name>.<random>.partial<suffix>` -> `<name>`)."""
    path = Path(os.path.abspath(os.fspath(path)))
    name = path.name
    if name.startswith(".") and ".partial" in name:
        name = name[1:].rsplit(".partial", 1)[0].rsplit(".", 1)[0]
    return str(path.parent / name)


class Spy:
    def __init__(self) -> None:
        self.events: List[Tuple[str, str]] = []  # (kind, final path) in call order

    def add(self, kind: str, path) -> None:
        self.events.append((kind, final_name(path)))

    def counts(self, kind: str) -> Dict[str, int]:
        return dict(Counter(path for k, path in self.events if k == kind))

    def read_after_write(self) -> List[Tuple[str, str]]:
        """(kind, path) of every read of a file (or its temporary) after the command wrote it."""
        written, late = set(), []
        for kind, path in self.events:
            if kind == "write":
                written.add(path)
            elif path in written:
                late.append((kind, path))
        return late


@contextlib.contextmanager
def spying():
    """Patch SimpleITK's ImageFileReader.Execute / ReadImageInformation / WriteImage, nibabel.load and
    builtins.open (reads and writes) for the duration; yields the Spy."""
    import nibabel
    import SimpleITK as sitk

    spy = Spy()
    saved = {
        "WriteImage": sitk.WriteImage, "Execute": sitk.ImageFileReader.Execute,
        "Info": sitk.ImageFileReader.ReadImageInformation, "nib": nibabel.load, "open": builtins.open,
    }

    def execute(self):
        spy.add("decode", self.GetFileName())
        return saved["Execute"](self)

    def information(self):
        spy.add("header", self.GetFileName())
        return saved["Info"](self)

    def write_image(image, filename, *args, **kwargs):
        spy.add("write", filename)
        return saved["WriteImage"](image, filename, *args, **kwargs)

    def nib_load(filename, *args, **kwargs):
        spy.add("nibabel", filename)
        return saved["nib"](filename, *args, **kwargs)

    def spy_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)):
            hashing = sys._getframe(1).f_code.co_name == "file_sha256"
            spy.add("write" if any(c in mode for c in "wax+") else "hash" if hashing else "open_read", file)
        return saved["open"](file, mode, *args, **kwargs)

    # sitk.ReadImage is Python code calling ImageFileReader.Execute, so Execute alone counts every decode once;
    # pathlib opens through io.open, builtins.open is the same function under another name: both are patched.
    sitk.WriteImage, nibabel.load, builtins.open, io.open = write_image, nib_load, spy_open, spy_open
    sitk.ImageFileReader.Execute, sitk.ImageFileReader.ReadImageInformation = execute, information
    try:
        yield spy
    finally:
        sitk.WriteImage, nibabel.load = saved["WriteImage"], saved["nib"]
        builtins.open = io.open = saved["open"]
        sitk.ImageFileReader.Execute, sitk.ImageFileReader.ReadImageInformation = saved["Execute"], saved["Info"]


def segment_with_levels(folder: Path, seed: int = 7):
    """Write a phantom into `folder`, run `segment --model demo --cord --discs --pmj` in-process under the spy;
    returns (exit code, Spy, {input name: path})."""
    from RootletSegLogic.cli.main import main
    from RootletSegLogic.synthetic.phantom import make_phantom, write_phantom

    paths = {name: str(path) for name, path in write_phantom(make_phantom(seed=seed), folder).items()}
    inputs = {name: paths[name] for name in ("image", "cord", "discs", "pmj")}
    argv = ["segment", inputs["image"], "--model", "demo", "--threads", "1", "--cord", inputs["cord"],
            "--discs", inputs["discs"], "--pmj", inputs["pmj"], "--progress", "none"]
    with spying() as spy:
        code = main(argv)
    return code, spy, inputs


def summary(spy: Spy, inputs: Dict[str, str]) -> dict:
    kinds = ("decode", "header", "nibabel", "hash", "open_read")
    per_input = {name: {kind: spy.counts(kind).get(final_name(path), 0) for kind in kinds}
                 for name, path in inputs.items()}
    return {"inputs": per_input, "read_after_write": sorted(set(spy.read_after_write()))}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        code, spy, inputs = segment_with_levels(Path(tmp))
        report = summary(spy, inputs)
        report["exit_code"] = code
        report["read_after_write"] = [(kind, os.path.relpath(path, tmp)) for kind, path in report["read_after_write"]]
        json.dump(report, sys.stdout, indent=1)
        print()
