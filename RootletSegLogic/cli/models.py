"""`rootletseg models list | download NAME | import ZIP_OR_DIR | info NAME`: the model registry and cache.

    rootletseg models list [--json]
    rootletseg models download NAME [--url URL] [--sha256 HEX] [--force] [--progress bar|json|none]
    rootletseg models import ZIP_OR_DIR [--name NAME] [--force] [--progress bar|json|none]
    rootletseg models info NAME [--json]

The cache is `$ROOTLETSEG_HOME` (else the per-user cache folder); see `models.py`.
"""

from __future__ import annotations

import argparse
import json
import sys

from RootletSegLogic.cli.main import add_progress_option


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, download, import and describe segmentation models",
        description="Manage RootletSeg models: the registry (rootlet models rootletseg, m5, demo; landmark models "
        "totalspineseg, demo-spine for the cord and discs) and the per-user model cache "
        "($ROOTLETSEG_HOME, else the user's cache folder).",
    )
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION")
    actions.required = True

    listing = actions.add_parser("list", help="known and installed models, as a table")
    listing.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    listing.set_defaults(func=run, progress="none")

    download = actions.add_parser("download", help="download a registry model into the cache")
    download.add_argument("name", metavar="NAME", help="registry name or alias (rootletseg, m5, ...)")
    download.add_argument("--url", help="download from this URL instead (a mirror of the official zip)")
    download.add_argument("--sha256", metavar="HEX", help="expected sha256 of the zip; a mismatch is refused")
    download.add_argument("--force", action="store_true", help="download again even if already installed")
    add_progress_option(download)
    download.set_defaults(func=run)

    importing = actions.add_parser("import", help="install a local model zip or folder into the cache")
    importing.add_argument("source", metavar="ZIP_OR_DIR", help="nnU-Net v2 model zip or folder (SCT layout)")
    importing.add_argument("--name", help="name to use it by (default: from the file name)")
    importing.add_argument("--force", action="store_true", help="replace an imported model of the same name")
    add_progress_option(importing)
    importing.set_defaults(func=run)

    info = actions.add_parser("info", help="everything known about one model")
    info.add_argument("name", metavar="NAME", help="registry name, alias or imported model name")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=run, progress="none")


def _table(rows, headers) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def _print_list(as_json: bool) -> None:
    from RootletSegLogic.segmentation.cache import list_models
    from RootletSegLogic.segmentation.registry import lookup, models_root

    entries = list_models()
    for entry in entries:  # rootlet models segment rootlets; landmark models find the cord and discs
        spec = lookup(entry["name"])
        entry["kind"] = spec.kind if spec is not None else "rootlets"
    if as_json:
        print(json.dumps(entries, indent=2))
        return
    rows = []
    for entry in entries:
        name = entry["name"] + (f" ({', '.join(entry['aliases'])})" if entry["aliases"] else "")
        rows.append((name, entry["kind"], entry["release"] or "-", entry["labels"] or "-", entry["state"],
                     entry["url"] or "-"))
    print(_table(rows, ("NAME", "KIND", "RELEASE", "LABELS", "INSTALLED", "URL")))
    print(f"\ncache: {models_root()}")


def _print_info(name: str, as_json: bool) -> None:
    from RootletSegLogic.segmentation.cache import model_info
    from RootletSegLogic.segmentation.registry import lookup

    info = model_info(name)
    spec = lookup(str(info.get("name") or name))
    info["kind"] = spec.kind if spec is not None else "rootlets"
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return
    order = ("name", "aliases", "kind", "title", "release", "source", "trusted", "state", "path", "url", "published_sha256",
             "labels", "contrasts", "trainer", "folds", "weights_sha256", "description", "problem")
    for key in order:
        if key not in info:
            continue
        value = info[key]
        if key == "state":
            key, value = "installed", {"yes": "yes", "no": "no (run `rootletseg models download NAME`)"}.get(
                value, value).replace("NAME", str(info["name"]))
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        print(f"{key + ':':<18}{'-' if value in (None, '') else value}")
    record = info.get("record")
    if record:
        for key in ("url", "sha256", "size_bytes", "date", "origin"):
            if record.get(key) is not None:
                print(f"{'installed ' + key + ':':<18}{record[key]}")


def run(args: argparse.Namespace, reporter) -> int:
    from RootletSegLogic.segmentation.cache_install import download_model, import_model
    from RootletSegLogic.segmentation.registry import (
        RECORD_NAME,
        TRUST_WARNING,
        installed_path,
        lookup,
    )

    action = args.models_command
    if action == "list":
        _print_list(args.json)
        return 0
    if action == "info":
        _print_info(args.name, args.json)
        return 0
    if action == "download":
        spec = lookup(args.name)
        already = bool(spec and not spec.embedded and not args.force
                       and (installed_path(spec.name) / RECORD_NAME).is_file())
        model = download_model(args.name, url=args.url, sha256=args.sha256, force=args.force,
                                      progress=reporter, warn=reporter.warning)
        if already:
            reporter.warning(f"Model '{model.metadata['name']}' is already installed; use --force to download it "
                             "again.")
    else:  # import
        model = import_model(args.source, name=args.name, force=args.force, progress=reporter)
        reporter.warning(TRUST_WARNING.format(what=f"The imported model '{model.metadata['name']}'"))
    reporter.result({
        "model": model.metadata["name"],
        "path": str(model.trainer_dir),
        "sha256": model.metadata.get("weights_sha256") or "",
    })
    sys.stdout.flush()
    return 0
