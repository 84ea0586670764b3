"""Hardening (issue 8), kinds "short or damaged files" and "impossible geometry or voxel types": NIfTI files
built byte by byte (header fields exactly as given, no library fixing them), read in process (property tests
with hypothesis over dims, spacing, dtypes, sform matrices and truncation) and by real `rootletseg` processes."""

from __future__ import annotations

import gzip
import io
import shutil
import sys
from pathlib import Path

import nibabel
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hardening_kit import assert_refused, cli, snapshot  # noqa: E402

from RootletSegLogic.errors import UserError  # noqa: E402
from RootletSegLogic.images.reading import MAX_SPACING_MM, MIN_SPACING_MM, read_image  # noqa: E402

DTYPES = ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "float32", "float64", "complex64"]


def nifti_bytes(shape, dtype="int16", pixdim=(1.0, 1.0, 1.0), sform=None, cut: int = 0, seed: int = 0) -> bytes:
    """A NIfTI-1 single file: header fields as given (dim, pixdim, sform), qform code 1 with identity rotation,
    data in Fortran order, the last `cut` bytes of the file removed."""
    header = nibabel.Nifti1Header()
    header["dim"][:] = 1
    header["dim"][0] = len(shape)
    header["dim"][1:len(shape) + 1] = shape
    header.set_data_dtype(np.dtype(dtype))
    header["pixdim"][1:4] = pixdim
    header["qform_code"] = 1
    header["quatern_b"] = header["quatern_c"] = header["quatern_d"] = 0
    if sform is not None:
        header["sform_code"] = 1
        header["srow_x"], header["srow_y"], header["srow_z"] = np.asarray(sform, dtype=float)[:3]
    header["vox_offset"] = 352
    count = int(np.prod([max(v, 0) for v in shape]))
    data = np.random.default_rng(seed).integers(0, 100, count).astype(dtype)
    block = header.binaryblock + b"\0" * 4 + data.tobytes(order="F")
    return block[:len(block) - cut] if cut else block


def write(path: Path, block: bytes) -> Path:
    path.write_bytes(gzip.compress(block) if path.name.endswith(".gz") else block)
    return path


# ----------------------------------------------------------------------------------------------- damaged files
def test_truncated_gzip_is_one_sentence(tmp_path):
    whole = gzip.compress(nifti_bytes((12, 10, 8)))
    for keep in (len(whole) // 2, 30, len(whole) - 9):
        path = tmp_path / f"t{keep}.nii.gz"
        path.write_bytes(whole[:keep])
        with pytest.raises(UserError, match="damaged or truncated|truncated"):
            read_image(path)


def test_gzip_with_only_a_header_is_refused(tmp_path):
    for dtype in ("int16", "float32"):
        path = write(tmp_path / f"h_{dtype}.nii.gz", nifti_bytes((12, 10, 8), dtype)[:352])
        with pytest.raises(UserError, match="truncated"):
            read_image(path)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "float32"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_short_data_block_is_not_zero_filled(tmp_path, dtype, suffix):
    path = write(tmp_path / f"short{suffix}", nifti_bytes((12, 10, 8), dtype, cut=7))
    with pytest.raises(UserError, match="truncated: its header announces"):
        read_image(path)


def test_complete_file_with_trailing_bytes_reads(tmp_path):
    path = write(tmp_path / "extra.nii.gz", nifti_bytes((12, 10, 8)) + b"\0" * 16)
    assert read_image(path).GetSize() == (12, 10, 8)


def test_garbage_and_empty_files(tmp_path):
    for name, data in (("empty.nii.gz", b""), ("empty.nii", b""), ("noise.nii.gz", b"\x1f\x8b\x08garbage"),
                       ("text.nii", b"not an image at all" * 30)):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(UserError):
            read_image(path)


# ----------------------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("pixdim", [(0.0, 1, 1), (1, float("nan"), 1), (1, 1, float("inf")), (1e9, 1, 1),
                                    (1e-6, 1, 1), (1, 1, 250.0)])
def test_impossible_spacing_refused(tmp_path, pixdim):
    path = write(tmp_path / "s.nii", nifti_bytes((12, 10, 8), pixdim=pixdim))
    with pytest.raises(UserError, match="voxel size"):
        read_image(path)


def test_singular_or_nan_sform_refused(tmp_path):
    for index, sform in enumerate((np.zeros((3, 4)), [[1, 0, 0, 0], [0, np.nan, 0, 0], [0, 0, 1, 0]],
                                   [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]])):
        path = write(tmp_path / f"sf{index}.nii", nifti_bytes((12, 10, 8), sform=sform))
        with pytest.raises(UserError, match="orientation matrix"):
            read_image(path)


def test_complex_voxels_refused(tmp_path):
    path = write(tmp_path / "c.nii.gz", nifti_bytes((12, 10, 8), "complex64"))
    with pytest.raises(UserError, match="complex voxels"):
        read_image(path)


def test_impossible_dims_refused(tmp_path):
    for index, shape in enumerate(((12, 0, 8), (12, -3, 8))):
        path = write(tmp_path / f"d{index}.nii", nifti_bytes(shape))
        with pytest.raises(UserError):
            read_image(path)


# ----------------------------------------------------------------------------------------------- properties
spacing_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                           st.sampled_from([0.0, -1.0, 0.5, 1.0, 2.5, 1e-4, 1e4]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.lists(st.integers(-1, 5), min_size=1, max_size=5), dtype=st.sampled_from(DTYPES),
       pixdim=st.tuples(spacing_values, spacing_values, spacing_values), cut=st.integers(0, 40),
       gz=st.booleans(), sform=st.one_of(st.none(), st.lists(st.floats(-3, 3, width=32), min_size=12, max_size=12)))
def test_any_header_is_an_image_or_one_sentence(tmp_path, shape, dtype, pixdim, cut, gz, sform):
    """Whatever the header says, read_image gives a valid 3D image or a UserError, never another exception; a file
    shorter than its header says, a bad spacing, complex voxels are always refused."""
    path = tmp_path / ("p.nii.gz" if gz else "p.nii")
    matrix = None if sform is None else np.array(sform).reshape(3, 4)
    block = nifti_bytes(shape, dtype, pixdim, matrix, cut=cut)
    write(path, block)
    try:
        image = read_image(path)
    except UserError as error:
        assert str(error).endswith(".") and "\n" not in str(error)
        return
    assert cut == 0, "a truncated file was accepted"
    assert dtype != "complex64"
    assert image.GetDimension() == 3 and image.GetNumberOfComponentsPerPixel() == 1
    spacing = np.array(image.GetSpacing())
    assert np.all(np.isfinite(spacing)) and np.all(spacing >= MIN_SPACING_MM) and np.all(spacing <= MAX_SPACING_MM)
    assert all(np.isfinite(v) and MIN_SPACING_MM <= abs(v) <= MAX_SPACING_MM for v in pixdim[:min(len(shape), 3)])


# ----------------------------------------------------------------------------------------------- real processes
@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("phantom_img")
    assert cli("phantom", "--out", folder, "--shape", "32", "32", "128").returncode == 0
    return folder


@pytest.mark.parametrize("damage", ["truncated", "header-only", "short-data", "zero-spacing", "complex"])
def test_levels_and_segment_refuse_bad_images(tmp_path, phantom_files, damage):
    work = tmp_path / "w"
    work.mkdir()
    for name in ("cord.nii.gz", "discs.nii.gz", "image.nii.gz"):
        shutil.copy(phantom_files / name, work / name)
    raw = gzip.decompress((phantom_files / "rootlets.nii.gz").read_bytes())
    bad = work / "rootlets.nii.gz"
    if damage == "truncated":
        whole = (phantom_files / "rootlets.nii.gz").read_bytes()
        bad.write_bytes(whole[: len(whole) * 2 // 3])
    elif damage == "header-only":
        bad.write_bytes(gzip.compress(raw[:352]))
    elif damage == "short-data":
        bad.write_bytes(gzip.compress(raw[:-100]))
    else:
        header = nibabel.Nifti1Header.from_fileobj(io.BytesIO(raw[:348]))
        if damage == "zero-spacing":
            header["pixdim"][2] = 0.0
        else:
            header.set_data_dtype(np.complex64)
            raw = raw + b"\0" * (len(raw) * 8)  # enough bytes for complex voxels: only the type is wrong
        bad.write_bytes(gzip.compress(header.binaryblock + raw[348:]))
    before = snapshot(work)
    result = cli("levels", "--rootlets", bad, "--cord", work / "cord.nii.gz", "--discs", work / "discs.nii.gz",
                 "-o", work / "t.tsv", "--progress", "none")
    assert_refused(result, "rootlet")
    result = cli("segment", bad, "--model", "demo", "--device", "cpu", "--threads", "1", "--progress", "none")
    assert_refused(result)
    assert snapshot(work) == before
