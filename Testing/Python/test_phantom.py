"""The synthetic phantom: reproducible, anatomically ordered, the same physical truth on any grid, CLI writes it."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REPO_ROOT

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.grid import same_grid
from RootletSegLogic.images.orientation import axcodes_of, reorient
from RootletSegLogic.images.world import lps_to_ras, ras_to_lps, voxel_centers_lps
from RootletSegLogic.levels.types import PMJ_VALUE
from RootletSegLogic.synthetic.anatomy import DISC_VALUES, LEVELS
from RootletSegLogic.synthetic.phantom import DEFAULT_SHAPE, make_phantom, write_phantom
from RootletSegLogic.synthetic.truth import entry_zone_bounds


@pytest.fixture(scope="module")
def phantom0():
    return make_phantom(seed=0)


def arr(image):
    return sitk.GetArrayFromImage(image)


def test_reproducible_by_seed(phantom0):
    again = make_phantom(seed=0)
    for name, image in phantom0.images().items():
        a, b = arr(image), arr(again.images()[name])
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert again.truth == phantom0.truth
    other = make_phantom(seed=1)
    assert not np.array_equal(arr(other.image), arr(phantom0.image))
    assert other.truth["levels"] != phantom0.truth["levels"]


@pytest.mark.parametrize("seed", [1, 7, 1000, 1001])
def test_every_seed_has_all_levels_in_order(seed):
    truth = make_phantom(seed=seed).truth
    assert list(truth["levels"]) == ["C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1"]
    rostral = [v["rostral_S_mm"] for v in truth["levels"].values()]
    assert rostral == sorted(rostral, reverse=True)
    assert truth["pmj_ras"][2] > rostral[0]


def test_default_grid_and_labels(phantom0):
    assert phantom0.image.GetSize() == DEFAULT_SHAPE
    assert axcodes_of(phantom0.image) == "RAS"
    for image in phantom0.images().values():
        assert same_grid(image, phantom0.image)
    assert arr(phantom0.image).dtype == np.float32
    rootlets, discs, pmj, cord = arr(phantom0.rootlets), arr(phantom0.discs), arr(phantom0.pmj), arr(phantom0.cord)
    for a in (rootlets, discs, pmj, cord):
        assert a.dtype == np.uint8
    assert set(np.unique(rootlets)) == {0, *LEVELS}
    assert set(np.unique(cord)) == {0, 1}
    values, counts = np.unique(discs, return_counts=True)
    assert list(values) == [0, *DISC_VALUES] and all(counts[1:] == 1)
    values, counts = np.unique(pmj, return_counts=True)
    assert list(values) == [0, PMJ_VALUE] and counts[1] == 1
    assert np.all(arr(phantom0.image) > 0)


def test_rootlets_thick_enough(phantom0):
    from scipy import ndimage

    rootlets = arr(phantom0.rootlets)
    for level in LEVELS:
        mask = rootlets == level
        # at least ~2 voxels across: most voxels survive a 1-voxel erosion in an axial/coronal plane
        eroded = ndimage.binary_erosion(mask, structure=np.ones((1, 2, 2), bool))
        assert eroded.sum() > 0.25 * mask.sum(), level


def test_rootlets_outside_but_adjacent_to_cord(phantom0):
    from scipy import ndimage

    rootlets, cord = arr(phantom0.rootlets), arr(phantom0.cord)
    assert not np.any((rootlets > 0) & (cord > 0))
    touching = ndimage.binary_dilation(cord > 0, iterations=1)
    for level in LEVELS:
        assert np.any((rootlets == level) & touching), f"level {level} does not reach the cord"


def test_levels_ordered_rostro_caudally_with_anatomical_shift(phantom0):
    truth = phantom0.truth
    names = list(truth["levels"])
    assert names == ["C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1"]
    rostral = [truth["levels"][n]["rostral_S_mm"] for n in names]
    caudal = [truth["levels"][n]["caudal_S_mm"] for n in names]
    mids = [(r + c) / 2 for r, c in zip(rostral, caudal)]
    assert all(r > c for r, c in zip(rostral, caudal))
    assert all(a > b for a, b in zip(mids, mids[1:]))
    assert all(a > b for a, b in zip(rostral, rostral[1:]))
    disc_s = [truth["discs"][str(v)]["position_ras"][2] for v in DISC_VALUES]
    assert all(a > b for a, b in zip(disc_s, disc_s[1:]))
    pmj_s = truth["pmj_ras"][2]
    assert pmj_s > rostral[0]
    # spinal C(n+1) lies roughly within vertebra Cn (between discs n and n+1)
    for vertebra in range(2, 8):
        spinal_mid = mids[vertebra + 1 - 2]
        top, bottom = disc_s[vertebra - 2], disc_s[vertebra + 1 - 2]
        assert bottom - 4 < spinal_mid < top + 4
    # discs lie just anterior to the cord
    cord = phantom0.cord
    for v in DISC_VALUES:
        ras = truth["discs"][str(v)]["position_ras"]
        i, j, k = cord.TransformPhysicalPointToIndex(tuple(ras_to_lps(ras)))
        column = arr(cord)[k, :, i]
        anterior_edge = np.nonzero(column)[0].max()
        assert 0 < j - anterior_edge <= 3


def test_truth_matches_label_maps(phantom0):
    rootlets, cord = arr(phantom0.rootlets), arr(phantom0.cord)
    s = voxel_centers_lps(phantom0.image, [(0, 0, k) for k in range(rootlets.shape[0])])[:, 2]
    bounds = entry_zone_bounds(rootlets, cord, s)
    for name, level in phantom0.truth["levels"].items():
        assert (level["rostral_S_mm"], level["caudal_S_mm"], level["n_voxels"]) == bounds[level["label"]]


def _physical_truth(phantom):
    t = phantom.truth
    levels = {n: (v["rostral_S_mm"], v["caudal_S_mm"]) for n, v in t["levels"].items()}
    discs = {k: v["position_ras"] for k, v in t["discs"].items()}
    return levels, discs, t["pmj_ras"]


@pytest.mark.parametrize("orientation", ["LPS", "PSR", "ILA"])
def test_same_truth_in_other_orientations(phantom0, orientation):
    other = make_phantom(seed=0, orientation=orientation)
    assert axcodes_of(other.image) == orientation
    assert _physical_truth(other) == _physical_truth(phantom0)
    back = reorient(other.rootlets, "RAS")
    assert same_grid(back, phantom0.rootlets)
    assert np.array_equal(arr(back), arr(phantom0.rootlets))
    assert np.array_equal(arr(reorient(other.image, "RAS")), arr(phantom0.image))


@pytest.mark.parametrize("shape, spacing, orientation", [
    ((60, 60, 160), (0.8, 0.8, 0.8), "RAS"),
    ((48, 48, 64), (1.0, 1.0, 2.0), "LPS"),
    ((40, 40, 128), (1.2, 1.2, 1.0), "PIR"),
])
def test_same_physical_truth_on_other_grids(phantom0, shape, spacing, orientation):
    other = make_phantom(seed=0, shape=shape, spacing=spacing, orientation=orientation)
    levels0, discs0, pmj0 = _physical_truth(phantom0)
    levels, discs, pmj = _physical_truth(other)
    assert list(levels) == list(levels0)
    voxel = max(max(spacing), 1.0)
    for name in levels0:
        assert abs(levels[name][0] - levels0[name][0]) <= voxel + 0.01, name
        assert abs(levels[name][1] - levels0[name][1]) <= voxel + 0.01, name
    for value in discs0:
        assert np.allclose(discs[value], discs0[value], atol=voxel + 0.01)
    assert np.allclose(pmj, pmj0, atol=voxel + 0.01)
    # the cord is the same physical object: same centre of mass (RAS) within a fraction of a voxel
    def centroid(image):
        idx = np.argwhere(arr(image) > 0)[:, ::-1]
        return lps_to_ras(voxel_centers_lps(image, idx)).mean(axis=0)
    assert np.allclose(centroid(other.cord), centroid(phantom0.cord), atol=0.5)


def test_bad_grid_is_a_user_error():
    with pytest.raises(UserError):
        make_phantom(shape=(4, 48, 128))
    with pytest.raises(UserError):
        make_phantom(spacing=(0, 1, 1))
    with pytest.raises(UserError):
        make_phantom(orientation="RAR")


def test_write_phantom_all_files_and_no_overwrite(tmp_path, phantom0):
    out = tmp_path / "new" / "phantom"
    paths = write_phantom(phantom0, out)
    assert sorted(paths) == ["cord", "discs", "image", "pmj", "rootlets", "truth"]
    for path in paths.values():
        assert path.is_file()
    assert json.loads(paths["truth"].read_text())["seed"] == 0
    read = sitk.ReadImage(str(paths["rootlets"]))
    assert np.array_equal(arr(read), arr(phantom0.rootlets))
    assert same_grid(read, phantom0.rootlets)
    before = paths["image"].stat().st_mtime_ns
    with pytest.raises(UserError, match="already exists"):
        write_phantom(make_phantom(seed=1), out)
    assert paths["image"].stat().st_mtime_ns == before
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())
    write_phantom(make_phantom(seed=1), out, overwrite=True)
    assert json.loads(paths["truth"].read_text())["seed"] == 1


def _phantom_parser():
    from RootletSegLogic.cli.phantom import register

    parser = argparse.ArgumentParser(prog="rootletseg")
    register(parser.add_subparsers(dest="command"))
    return parser


class _Reporter:
    def __init__(self):
        self.outputs = None

    def __call__(self, event):
        pass

    def warning(self, message):
        pass

    def result(self, outputs):
        self.outputs = outputs


def test_cli_run_writes_and_refuses_overwrite(tmp_path):
    out = tmp_path / "ph"
    args = _phantom_parser().parse_args(
        ["phantom", "--out", str(out), "--seed", "3", "--shape", "40", "40", "100", "--orientation", "LPS"]
    )
    reporter = _Reporter()
    assert args.func(args, reporter) == 0
    assert set(reporter.outputs) == {"image", "rootlets", "cord", "discs", "pmj", "truth"}
    image = sitk.ReadImage(reporter.outputs["image"])
    assert image.GetSize() == (40, 40, 100) and axcodes_of(image) == "LPS"
    with pytest.raises(UserError, match="already exists"):
        args.func(args, _Reporter())
    bad = _phantom_parser().parse_args(["phantom", "--out", str(tmp_path / "x"), "--orientation", "RAX"])
    with pytest.raises(UserError):
        bad.func(bad, _Reporter())


def test_cli_process_writes_and_refuses_overwrite(tmp_path):
    out = tmp_path / "created" / "ph"
    cmd = [sys.executable, "-m", "RootletSegLogic", "phantom", "--out", str(out), "--seed", "2"]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert str(out / "image.nii.gz") in done.stdout
    assert (out / "truth.json").is_file()
    again = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
    assert "already exists" in again.stderr and "Traceback" not in again.stderr
    bad = subprocess.run(cmd + ["--overwrite", "--shape", "2", "2", "2"], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 1 and "too small" in bad.stderr
