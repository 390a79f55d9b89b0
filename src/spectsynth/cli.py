"""Command-line entry points for using the package without Snakemake.

    spectsynth demo OUT_DIR [--n-subjects N] [--seed S]   build the demo cohort as BIDS
    spectsynth check IMAGE [--subject ID] [--allow-4d]    validate one image, print what was found
    spectsynth config CONFIG.yaml                         validate a config, print it resolved
    spectsynth resources                                  list shipped templates/atlases and sources
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import SpectsynthError
from .logs import setup_logging


def _demo(args) -> int:
    from tqdm import tqdm

    from .inputs.demo import build_dataset_files, build_subject

    cfg = {"n_subjects": args.n_subjects, "seed": args.seed}
    if args.voxel_mm:
        cfg["voxel_mm"] = args.voxel_mm
    build_dataset_files(cfg, args.out_dir)
    for i in tqdm(range(args.n_subjects), desc="demo subjects", unit="subject"):
        build_subject(i, cfg, args.out_dir)
    print(f"demo cohort written to {args.out_dir}")
    return 0


def _check(args) -> int:
    import nibabel as nib

    from .io import load_image

    img = load_image(args.image, subject=args.subject, allow_4d=args.allow_4d)
    raw = nib.load(str(args.image))
    print(f"{args.image}: OK; stored {''.join(nib.aff2axcodes(raw.affine))}, shape {img.shape}, "
          f"voxel {tuple(round(float(z), 3) for z in img.header.get_zooms()[:3])} mm")
    return 0


def _config(args) -> int:
    import yaml

    from .config import load_config

    cfg = load_config(args.config, schema=args.schema)
    print(yaml.safe_dump(cfg, sort_keys=True))
    return 0


def _resources(args) -> int:
    from .resources import resource_notes, resource_path

    for name, note in resource_notes().items():
        try:
            where = str(resource_path(name))
        except SpectsynthError as exc:
            where = f"MISSING ({exc})"
        print(f"{name}\n    {note}\n    {where}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spectsynth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="build the demo cohort as a BIDS dataset")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--n-subjects", type=int, default=12)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--voxel-mm", type=float, nargs=3, default=None)
    p.set_defaults(func=_demo)
    p = sub.add_parser("check", help="validate one NIfTI image")
    p.add_argument("image", type=Path)
    p.add_argument("--subject", default=None)
    p.add_argument("--allow-4d", action="store_true")
    p.set_defaults(func=_check)
    p = sub.add_parser("config", help="validate a config file and print it with defaults")
    p.add_argument("config", type=Path)
    p.add_argument("--schema", type=Path, default=Path("config/schema.yaml"))
    p.set_defaults(func=_config)
    p = sub.add_parser("resources", help="list templates and atlases and where they come from")
    p.set_defaults(func=_resources)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        return args.func(args)
    except SpectsynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
