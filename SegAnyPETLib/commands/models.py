"""``seganypet models list|download|presets``: the model registry, the download cache and the inference presets."""
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
    actions.add_parser("presets", help="the inference presets: every option's value in each, with its meaning")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import REGISTRY, bundled_models_dir, cache_dir, cached_path, download

    if args.action == "download":
        path = download(args.name)
        print(f"{args.name}: {path}")
        return 0
    if args.action == "presets":
        print_presets()
        return 0
    header = ("name", "cached", "preset", "source", "description")
    rows = []
    for entry in REGISTRY.values():
        source = f"hf://{entry.repo_id}/{entry.filename}" if entry.repo_id else f"bundled ({entry.filename})"
        rows.append((entry.name, "yes" if cached_path(entry.name) else "no", entry.preset, source, entry.description))
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths)).rstrip())
    print(f"\nbundled models: {bundled_models_dir()}")
    print(f"download cache: {cache_dir() or 'huggingface_hub default (HF_HUB_CACHE, ~/.cache/huggingface/hub)'}")
    return 0


def print_presets() -> None:
    """Each option of the session config with its value in every preset and its help."""
    from ..inference.config import PRESETS, option_specs

    def shown(value) -> str:
        return ",".join(value) or "-" if isinstance(value, tuple) else "checkpoint's" if value is None else str(value)

    header = ["option", *PRESETS]
    rows = [[spec.name, *(shown(getattr(config, spec.name)) for config in PRESETS.values())] for spec in option_specs()]
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths)).rstrip())
    print("\nset any option with --set KEY=VALUE (Python: InteractiveSession(model, preset, KEY=VALUE)):")
    for spec in option_specs():
        print(f"  {spec.name}: {spec.help}")
