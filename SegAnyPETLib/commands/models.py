"""``seganypet models list|download``: the model registry and the download cache."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list registry models or download one into the cache",
        description="List the registry's models (and which are on this machine) or download one.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    actions.add_parser("list", help="registry models, where they come from and whether they are cached")
    download = actions.add_parser("download", help="download a model into the Hugging Face cache")
    download.add_argument("name", help="registry name or hf://owner/repo/file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import REGISTRY, bundled_models_dir, cache_dir, cached_path, download

    if args.action == "download":
        path = download(args.name)
        print(f"{args.name}: {path}")
        return 0
    rows = []
    for entry in REGISTRY.values():
        path = cached_path(entry.name)
        source = f"hf://{entry.repo_id}/{entry.filename}" if entry.repo_id else f"bundled ({entry.filename})"
        rows.append((entry.name, "yes" if path else "no", source, entry.description))
    widths = [max(len(r[i]) for r in rows + [("name", "cached", "source", "")]) for i in range(3)]
    print(f"{'name':<{widths[0]}}  {'cached':<{widths[1]}}  {'source':<{widths[2]}}  description")
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    print(f"\nbundled models: {bundled_models_dir()}")
    print(f"download cache: {cache_dir() or 'huggingface_hub default (HF_HUB_CACHE, ~/.cache/huggingface/hub)'}")
    return 0
