"""RootletSegLogic.images: reading, orientation, grids, world coordinates and atomic outputs (real files, real
SimpleITK)."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.atomic import (
    atomic_outputs,
    check_outputs,
    write_image,
    write_text,
)
from RootletSegLogic.images.files import absolute_path
from RootletSegLogic.images.grid import same_grid
from RootletSegLogic.images.orientation import (
    ALL_AXCODES,
    Reorientation,
    axcodes_of,
    axcodes_to_sct,
    direction_for_axcodes,
    reorient,
    sct_to_axcodes,
    validate_axcodes,
)
from RootletSegLogic.images.reading import read_image
from RootletSegLogic.images.world import lps_to_ras, voxel_centers_lps
from RootletSegLogic.naming import image_stem


def _asymmetric_image(direction_code="RAS", spacing=(0.8, 1.1, 1.7)) -> sitk.Image:
    rng = np.random.default_rng(3)
    image = sitk.GetImageFromArray(rng.integers(0, 1000, size=(7, 6, 5)).astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin((12.5, -3.25, 40.0))
    image.SetDirection(direction_for_axcodes(direction_code))
    return image


def test_48_axcodes_are_distinct_and_valid():
    assert len(set(ALL_AXCODES)) == 48
    for code in ALL_AXCODES:
        assert validate_axcodes(code) == code


@pytest.mark.parametrize("code", ALL_AXCODES)
def test_reorientation_matches_dicomorient_and_round_trips(code):
    image = _asymmetric_image("PSR")
    plan = Reorientation(image, code)
    moved = plan.apply(image)
    reference = sitk.DICOMOrient(image, code)
    assert axcodes_of(moved) == code
    assert np.array_equal(sitk.GetArrayFromImage(moved), sitk.GetArrayFromImage(reference))
    assert same_grid(moved, reference, 1e-9)
    restored = plan.restore(moved)
    assert np.array_equal(sitk.GetArrayFromImage(restored), sitk.GetArrayFromImage(image))
    assert restored.GetOrigin() == image.GetOrigin() and restored.GetDirection() == image.GetDirection()
    array = sitk.GetArrayFromImage(image)
    assert np.array_equal(plan.apply_array_zyx(array), sitk.GetArrayFromImage(moved))
    assert np.array_equal(plan.restore_array_zyx(plan.apply_array_zyx(array)), array)


def test_reorientation_keeps_every_voxel_at_its_world_position():
    image = _asymmetric_image("ILP")
    moved = reorient(image, "RAS")
    array, moved_array = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(moved)
    for index in [(0, 0, 0), (4, 5, 6), (2, 3, 1)]:
        point = image.TransformIndexToPhysicalPoint(index)
        moved_index = moved.TransformPhysicalPointToIndex(point)
        assert array[index[::-1]] == moved_array[moved_index[::-1]]


def test_oblique_direction_maps_to_closest_axes_and_back():
    image = _asymmetric_image("LPS")
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    oblique = rotation @ np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], dtype=float)
    image.SetDirection(tuple(oblique.ravel()))
    plan = Reorientation(image, "RAS")
    assert axcodes_of(plan.apply(image)) == "RAS"
    restored = plan.restore(plan.apply(image))
    assert restored.GetDirection() == image.GetDirection()
    assert np.array_equal(sitk.GetArrayFromImage(restored), sitk.GetArrayFromImage(image))


def test_dicomorient_letters_are_to_letters():
    """The convention the module relies on: DICOMOrient names where voxel axes point TO, in LPS world."""
    identity = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(identity) == "LPS"
    image = _asymmetric_image("RAS")
    assert image.GetDirection() == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    # i increases toward the patient's Right: world x (LPS, + = Left) decreases along i
    assert image.TransformIndexToPhysicalPoint((1, 0, 0))[0] < image.TransformIndexToPhysicalPoint((0, 0, 0))[0]
    assert axcodes_of(image) == "RAS"
    assert axcodes_of(sitk.DICOMOrient(image, "PSR")) == "PSR"


def _random_directions(count: int, seed: int):
    """Uniform random rotations (half of them with one axis mirrored), row-major tuples for SetDirection."""
    from scipy.spatial.transform import Rotation

    matrices = Rotation.random(count, random_state=seed).as_matrix()
    matrices[1::2, :, 0] *= -1  # left-handed voxel axes also occur in files
    return [tuple(m.ravel()) for m in matrices]


def test_600_random_oblique_directions_match_dicomorient_and_round_trip():
    rng = np.random.default_rng(11)
    array = rng.integers(0, 30000, size=(4, 3, 5)).astype(np.int16)
    for n, direction in enumerate(_random_directions(600, seed=5)):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(tuple(rng.uniform(0.3, 3.0, 3)))
        image.SetOrigin(tuple(rng.uniform(-100.0, 100.0, 3)))
        image.SetDirection(direction)
        code = ALL_AXCODES[n % 48]
        plan = Reorientation(image, code)
        moved = plan.apply(image)
        reference = sitk.DICOMOrient(image, code)
        assert axcodes_of(image) == sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(direction)
        assert axcodes_of(moved) == code
        assert np.array_equal(sitk.GetArrayViewFromImage(moved), sitk.GetArrayViewFromImage(reference))
        assert moved.GetOrigin() == reference.GetOrigin() and moved.GetDirection() == reference.GetDirection()
        assert np.array_equal(plan.apply_array_zyx(array), sitk.GetArrayViewFromImage(moved))
        restored = plan.restore(moved)
        assert np.array_equal(sitk.GetArrayViewFromImage(restored), array)
        assert (restored.GetSize(), restored.GetSpacing(), restored.GetOrigin(), restored.GetDirection()) == (
            image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())


def test_restore_refuses_an_image_not_made_from_the_reference():
    image = _asymmetric_image("PSR", spacing=(0.5, 0.5, 0.5))  # 5x6x7: every reorientation has another size
    plan = Reorientation(image, "RAS")
    moved = plan.apply(image)
    with pytest.raises(RuntimeError, match="does not come from"):
        plan.restore(image)  # the reference itself, not its reoriented copy
    shifted = sitk.Image(moved)
    shifted.SetOrigin(tuple(np.add(moved.GetOrigin(), (0.0, 0.0, 0.01))))  # 10 micrometres off
    with pytest.raises(RuntimeError, match="does not come from"):
        plan.restore(shifted)
    nearly = sitk.Image(moved)
    nearly.SetOrigin(tuple(np.add(moved.GetOrigin(), (0.0, 0.0, 1e-5))))  # rounding in a file header: accepted
    assert plan.restore(nearly).GetOrigin() == image.GetOrigin()
    assert Reorientation(image, "PSR").is_identity and not plan.is_identity


def test_direction_for_axcodes_is_the_axis_unit_vectors():
    assert direction_for_axcodes("LPS") == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert direction_for_axcodes("psr") == (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    for code in ALL_AXCODES:
        image = _asymmetric_image(code)
        assert axcodes_of(image) == code


def test_sct_letters_are_from_letters():
    assert sct_to_axcodes("LPI") == "RAS"
    assert axcodes_to_sct("LAS") == "RPI"
    with pytest.raises(UserError, match="names an axis twice"):
        validate_axcodes("RLS")
    with pytest.raises(UserError, match="not valid"):
        validate_axcodes("XYZ")
    with pytest.raises(UserError, match="not valid"):
        validate_axcodes("RASS")


def test_real_data_orientations(sct_data):
    t2 = sitk.ReadImage(str(sct_data / "t2" / "t2.nii.gz"))
    pam50 = sitk.ReadImage(str(sct_data / "template" / "PAM50_small_t2.nii.gz"))
    assert axcodes_of(t2) == "PSR"
    assert axcodes_of(pam50) == "LAS"


def test_image_stem_strips_suffixes_and_channel():
    assert image_stem("/a/sub-01_T2w_0000.nii.gz") == "sub-01_T2w"
    assert image_stem("t2.nii") == "t2"
    assert image_stem("scan.nrrd") == "scan"
    assert image_stem("scan.mha") == "scan"


def test_read_image_rejects_bad_inputs(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_image(tmp_path / "missing.nii.gz")
    text = tmp_path / "notes.nii.gz"
    text.write_text("not an image")
    with pytest.raises(UserError, match="could not be read"):
        read_image(text)
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.Image(8, 8, sitk.sitkFloat32), str(flat))
    with pytest.raises(UserError, match="3D volume"):
        read_image(flat)
    series = tmp_path / "series.nii.gz"
    sitk.WriteImage(sitk.Image([4, 4, 4, 3], sitk.sitkFloat32), str(series))
    with pytest.raises(UserError, match="3D volume"):
        read_image(series)
    nan = tmp_path / "nan.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((4, 4, 4), np.nan, np.float32)), str(nan))
    with pytest.raises(UserError, match="NaN"):
        read_image(nan)


def _same_image_bit_for_bit(a: sitk.Image, b: sitk.Image) -> bool:
    """Same pixel type, voxel bytes, grid (exact floats) and header metadata."""
    return (a.GetPixelID() == b.GetPixelID() and a.GetSize() == b.GetSize() and a.GetSpacing() == b.GetSpacing()
            and a.GetOrigin() == b.GetOrigin() and a.GetDirection() == b.GetDirection()
            and sitk.GetArrayViewFromImage(a).tobytes() == sitk.GetArrayViewFromImage(b).tobytes()
            and struct.pack("9d", *a.GetDirection()) == struct.pack("9d", *b.GetDirection())  # zeros' signs too
            and {k: a.GetMetaData(k) for k in a.GetMetaDataKeys()} == {k: b.GetMetaData(k) for k in b.GetMetaDataKeys()})


@pytest.fixture
def decodes(monkeypatch):
    """Counts full voxel decodes: ITK's (ImageFileReader.Execute, which sitk.ReadImage calls) and nibabel's (array proxy)."""
    import nibabel.arrayproxy

    calls = []

    def spy(owner, name, label):
        original = getattr(owner, name)

        def wrapper(self, *args, **kwargs):
            streamed_voxel = name == "Execute" and set(self.GetExtractSize()) == {1}  # grid + header, one voxel
            calls.append("itk-first-voxel" if streamed_voxel else label)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    spy(sitk.ImageFileReader, "Execute", "itk")  # sitk.ReadImage runs it too
    for name in ("get_unscaled", "__array__", "_get_scaled"):
        spy(nibabel.arrayproxy.ArrayProxy, name, "nibabel")
    return calls


REAL_FILES = ["t2/t2.nii.gz", "template/PAM50_small_t2.nii.gz",  # int16 / uint16: ITK decodes them
              "t2/t2_seg-manual_labeled.nii.gz", "template/PAM50_small_cord.nii.gz"]  # float64 / float32: nibabel


@pytest.mark.parametrize("name", REAL_FILES)
def test_read_image_equals_itk_and_decodes_once_on_real_data(sct_data, decodes, name):
    image = read_image(sct_data / name)
    assert [call for call in decodes if call != "itk-first-voxel"] in (["itk"], ["nibabel"]), decodes
    reference = sitk.ReadImage(str(sct_data / name))
    assert _same_image_bit_for_bit(image, reference)


def _write_float_nifti(path, array_ijk, dtype, slope=None, inter=None, endian="<"):
    """A NIfTI file of `array_ijk` (nibabel order) as `dtype`, optionally with scl_slope/scl_inter as stored
    (nibabel would reset them on save, so the header bytes are patched: offsets 112 and 116, float32)."""
    import gzip

    import nibabel

    affine = np.array([[0.0, 0.0, -0.8, 30.0], [1.1, 0.0, 0.0, -12.0], [0.0, -0.6, 0.0, 55.0], [0, 0, 0, 1]])
    header = nibabel.Nifti1Header(endianness=endian)
    raw = path.with_name(path.name.replace(".gz", ""))
    nibabel.save(nibabel.Nifti1Image(array_ijk.astype(dtype), affine, header), str(raw))
    if slope is not None:
        data = bytearray(raw.read_bytes())
        data[112:120] = struct.pack(endian + "ff", slope, inter)
        raw.write_bytes(bytes(data))
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(raw.read_bytes()))
        raw.unlink()
    return path


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("scaling", [None, (2.0, 0.5), (0.3, -7.1), (0.0, 5.0), (float("nan"), float("nan"))])
def test_float_nifti_read_equals_itk_bit_for_bit(tmp_path, decodes, dtype, suffix, scaling):
    """Float NIfTI are decoded by nibabel (ITK would hide NaN) yet give ITK's image: values with ITK's scaling
    rules (a zero or NaN slope, an intercept alone), grid and header, from one decode."""
    array = np.random.default_rng(2).normal(0, 300, size=(6, 5, 7))
    slope, inter = scaling or (None, None)
    for endian in "<>":
        path = _write_float_nifti(tmp_path / f"f{endian == '>'}{suffix}", array, dtype, slope, inter, endian)
        decodes.clear()
        image = read_image(path)
        assert decodes == ["itk-first-voxel", "nibabel"]
        assert _same_image_bit_for_bit(image, sitk.ReadImage(str(path)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_nifti_with_non_finite_voxels_is_refused_after_one_decode(tmp_path, decodes, bad):
    array = np.random.default_rng(4).normal(0, 1, size=(5, 6, 7))
    array[2, 3, 4] = bad
    for dtype in (np.float32, np.float64):
        path = _write_float_nifti(tmp_path / "bad.nii.gz", array, dtype)
        decodes.clear()
        with pytest.raises(UserError, match="NaN or infinite"):
            read_image(path)
        assert decodes == ["itk-first-voxel", "nibabel"]
        # what ITK alone would have let through: the voxel read as 0
        assert sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[4, 3, 2] == 0


def test_float_nifti_4d_single_volume_and_other_formats(tmp_path, decodes):
    import nibabel

    volume = np.random.default_rng(5).normal(0, 1, size=(4, 5, 6, 1)).astype(np.float32)
    path = tmp_path / "one.nii.gz"
    nibabel.save(nibabel.Nifti1Image(volume, np.diag([0.9, 1.2, 1.5, 1.0])), str(path))
    image = read_image(path)
    assert decodes == ["itk-first-voxel", "nibabel"] and image.GetSize() == (4, 5, 6)
    assert _same_image_bit_for_bit(image, sitk.ReadImage(str(path)))  # ITK drops the trailing axis itself
    nrrd = tmp_path / "f.nrrd"
    sitk.WriteImage(image, str(nrrd))
    decodes.clear()
    assert _same_image_bit_for_bit(read_image(nrrd), sitk.ReadImage(str(nrrd))) and decodes[0] == "itk"
    nan_nrrd = tmp_path / "nan.nrrd"
    array = sitk.GetArrayFromImage(image)
    array[1, 1, 1] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(array), str(nan_nrrd))  # NRRD keeps NaN: ITK's array shows it
    with pytest.raises(UserError, match="NaN"):
        read_image(nan_nrrd)


def test_single_volume_4d_is_accepted(tmp_path):
    path = tmp_path / "one.nii.gz"
    sitk.WriteImage(sitk.Image([4, 5, 6, 1], sitk.sitkInt16), str(path))
    assert read_image(path).GetSize() == (4, 5, 6)


def test_atomic_outputs_all_or_nothing(tmp_path):
    first, second = tmp_path / "a.nii.gz", tmp_path / "b.json"
    with pytest.raises(RuntimeError):
        with atomic_outputs([first, second]) as (tmp_a, tmp_b):
            sitk.WriteImage(_asymmetric_image(), str(tmp_a))
            raise RuntimeError("failure half-way")
    assert os.listdir(tmp_path) == []
    with atomic_outputs([first, second]) as (tmp_a, tmp_b):
        sitk.WriteImage(_asymmetric_image(), str(tmp_a))
        tmp_b.write_text("{}")
    assert sorted(os.listdir(tmp_path)) == ["a.nii.gz", "b.json"]


def test_existing_output_is_never_overwritten_unless_asked(tmp_path):
    target = tmp_path / "t2_seg.nii.gz"
    target.write_bytes(b"user data")
    with pytest.raises(UserError, match="already exists"):
        write_image(_asymmetric_image(), target)
    assert target.read_bytes() == b"user data"
    write_image(_asymmetric_image(), target, overwrite=True)
    assert read_image(target).GetSize() == (5, 6, 7)
    assert sorted(os.listdir(tmp_path)) == ["t2_seg.nii.gz"]


def test_voxel_centres_and_ras_conversion():
    image = _asymmetric_image("PSR")
    ijk = [(1, 2, 3), (0, 0, 0)]
    expected = [image.TransformIndexToPhysicalPoint(i) for i in ijk]
    assert np.allclose(voxel_centers_lps(image, ijk), expected)
    assert np.allclose(lps_to_ras([[1.0, 2.0, 3.0]]), [[-1.0, -2.0, 3.0]])


def test_atomic_outputs_refuses_unwritten_outputs_and_uses_umask_permissions(tmp_path):
    target = tmp_path / "table.tsv"
    with pytest.raises(RuntimeError, match="not written"):
        with atomic_outputs([target]):
            pass
    assert os.listdir(tmp_path) == []
    write_text("a\tb\n", target)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~umask


def test_check_outputs_fails_before_any_work(tmp_path):
    (tmp_path / "exists.nii.gz").write_bytes(b"x")
    with pytest.raises(UserError, match="already exists"):
        check_outputs([tmp_path / "new.nii.gz", tmp_path / "exists.nii.gz"])
    with pytest.raises(UserError, match="does not exist"):
        check_outputs([tmp_path / "nofolder" / "a.tsv"])
    with pytest.raises(UserError, match="same file"):
        check_outputs([tmp_path / "a.tsv", tmp_path / "a.tsv"])


def test_absolute_path_normalises_without_resolving_links(tmp_path):
    assert absolute_path(tmp_path / "a" / ".." / "b.nii.gz") == tmp_path / "b.nii.gz"
