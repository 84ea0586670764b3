"""Adding models to the per-user cache: `download_model` (a registry model, checksum-verified), `import_model` (a
local zip or folder under a name) and the once-only extraction of a local zip given to `resolve_model`.

Each install is staged and moved into place in one step (`segmentation/install.py`), so a failure or Ctrl-C leaves
the cache exactly as it was; the record written beside the model is read back by `segmentation/cached_models.py`.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Optional, Tuple, Union

from RootletSegLogic.errors import UserError
from RootletSegLogic.progress import ProgressCallback, no_progress
from RootletSegLogic.segmentation.cached_models import (
    Warn,
    default_import_name,
    is_verified_release,
    load_imported,
    load_installed,
    resolve_warn,
    safe_name,
    utc_now_iso,
    weights_sha256,
    write_record,
)
from RootletSegLogic.segmentation.install import (
    Staging,
    copy_model_folder,
    extract_zip,
    fetch,
    move_into_place,
    normalise_sha256,
    validate,
)
from RootletSegLogic.segmentation.model_folder import ModelFolder, load_model_folder
from RootletSegLogic.segmentation.registry import (
    RECORD_NAME,
    imported_root,
    installed_path,
    local_root,
    lookup,
    models_root,
    spec_or_error,
)

# ------------------------------------------------------------------------------------------------------ download


def download_model(
    name: str,
    url: Optional[str] = None,
    sha256: Optional[str] = None,
    force: bool = False,
    progress: Optional[ProgressCallback] = None,
    warn: Optional[Warn] = None,
) -> ModelFolder:
    """Download registry model `name` (or alias) into the cache and return it, validated.

    `url` replaces the registry URL (a mirror); `sha256` is the expected checksum of the zip when the registry has
    none. Already installed and not `force`: returns the installed copy without any network access. Progress:
    stage "download" (bytes), then "extract" (files). With no known checksum, `warn` (else `progress.warning`) gets
    the sha256 of what was downloaded. Any failure (UserError) or Ctrl-C leaves the cache exactly as before.
    """
    progress = progress or no_progress
    warn = resolve_warn(warn, progress)
    spec = spec_or_error(name)
    if spec.embedded:
        raise UserError(f"The '{spec.name}' model is embedded in RootletSeg and is never downloaded: "
                        f"use it as '{spec.name}'.")
    given = normalise_sha256(sha256, "checksum given")
    if spec.sha256 and given and given != spec.sha256.lower():
        raise UserError(f"The checksum given ({given}) differs from the published checksum of '{spec.name}' "
                        f"({spec.sha256}): leave --sha256 out or correct it.")
    expected = given or (spec.sha256.lower() if spec.sha256 else None)
    target = installed_path(spec.name)
    if not force and (target / RECORD_NAME).is_file():
        return load_installed(spec, warn)
    source_url = url or spec.url
    label = f"model '{spec.name}'"
    with Staging(models_root()) as staging:
        zip_path = staging.path / "download.zip"
        size = fetch(source_url, zip_path, label, spec.size_bytes, progress)
        from RootletSegLogic.images.files import (
            file_sha256,  # here, not at the top: SimpleITK adds 0.2 s to `models list`
        )
        actual = file_sha256(zip_path)
        if expected and actual != expected:
            raise UserError(f"The file downloaded for {label} from {source_url} has sha256 {actual}, not the "
                            f"expected {expected}: it is corrupt or not the published model; nothing was installed.")
        extracted = staging.path / "model"
        extracted.mkdir()
        shown = PurePosixPath(urllib.parse.urlparse(source_url).path).name or "model.zip"
        extract_zip(zip_path, extracted, f"'{shown}' downloaded for {label}", progress)
        validate(extracted, shown)
        record = {
            "name": spec.name,
            "title": spec.title,
            "release": spec.release,
            "url": source_url,
            "registry_url": spec.url,
            "sha256": actual,
            "weights_sha256": actual,
            "sha256_verified": bool(expected),
            # Trusted as the published release only when fetched from the registry URL or, from a mirror, when
            # the zip has the registry's own sha256 (a checksum the user gives only proves what they chose).
            "verified": is_verified_release(spec, source_url, actual),
            "size_bytes": size,
            "date": utc_now_iso(),
            "source": "registry",
        }
        write_record(extracted, record)
        # Without force, a folder lacking its record (damaged) is replaced; one installed by another process
        # meanwhile (record present) is kept and ours dropped.
        move_into_place(extracted, target, force or not (target / RECORD_NAME).is_file())
        staging.committed = True
    if not expected:
        warn(f"Model '{spec.name}' has no published checksum; sha256 of what was downloaded: {actual} "
             f"({size} bytes), recorded in {target / RECORD_NAME}.")
    return load_installed(spec, warn)


# -------------------------------------------------------------------------------------------------------- import


def import_model(
    zip_or_dir: Union[str, Path],
    name: Optional[str] = None,
    force: bool = False,
    progress: Optional[ProgressCallback] = None,
) -> ModelFolder:
    """Install a local model zip or folder into `<cache>/models/imported/<name>` (name defaults from the file name).

    A zip is extracted safely (as for downloads); a folder is validated and its JSON files and checkpoints copied.
    The model is then usable by `name` in `resolve_model`. It is not trusted (see TRUST_WARNING).
    """
    progress = progress or no_progress
    source = Path(zip_or_dir).expanduser()
    if not source.exists():
        raise UserError(f"'{source}' does not exist: give a model zip or an nnU-Net v2 model folder.")
    name = safe_name(name) if name else default_import_name(source)
    if lookup(name) is not None:
        raise UserError(f"'{name}' is a registry model name: choose another name with --name.")
    target = imported_root() / name
    if target.exists() and not force:
        raise UserError(f"A model named '{name}' is already imported ('{target}'): use --force to replace it, "
                        "or --name to choose another name.")
    with Staging(models_root()) as staging:
        content = staging.path / "model"
        content.mkdir()
        if source.is_dir():
            model = load_model_folder(source)
            copy_model_folder(model, content, progress)
            zip_hash, size = None, None
            weights_hash = weights_sha256(load_model_folder(content))
        else:
            label = f"'{source.name}'"
            from RootletSegLogic.images.files import (
                file_sha256,  # here, not at the top: SimpleITK adds 0.2 s to `models list`
            )
            zip_hash, size = file_sha256(source), source.stat().st_size
            extract_zip(source, content, label, progress)
            validate(content, source.name)
            weights_hash = zip_hash
        write_record(content, {
            "name": name, "title": name, "release": None, "url": None, "sha256": zip_hash,
            "weights_sha256": weights_hash, "size_bytes": size, "date": utc_now_iso(),
            "source": "import", "origin": str(source.resolve()),
        })
        if not move_into_place(content, target, force):
            raise UserError(f"A model named '{name}' was imported by another process meanwhile: use --force to "
                            "replace it.")
        staging.committed = True
    return load_imported(name, warn=None)


# ------------------------------------------------------------------------------------------------- a local zip


def load_local_zip(path: Path, progress: ProgressCallback) -> Tuple[ModelFolder, str]:
    from RootletSegLogic.images.files import (
        file_sha256,  # here, not at the top: SimpleITK adds 0.2 s to `models list`
    )
    zip_hash = file_sha256(path)
    target = local_root() / zip_hash[:16]
    if not (target / RECORD_NAME).is_file():
        with Staging(models_root()) as staging:
            content = staging.path / "model"
            content.mkdir()
            extract_zip(path, content, f"'{path.name}'", progress)
            validate(content, path.name)
            write_record(content, {
                "name": default_import_name(path), "release": None, "url": None, "sha256": zip_hash,
                "weights_sha256": zip_hash, "size_bytes": path.stat().st_size, "date": utc_now_iso(),
                "source": "local", "origin": str(path.resolve()),
            })
            move_into_place(content, target, force=False)  # False: another process extracted it meanwhile
            staging.committed = True
    return load_model_folder(target), zip_hash
