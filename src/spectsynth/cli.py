"""Command-line entry points for using the package without Snakemake.

    spectsynth demo OUT_DIR [--n-subjects N] [--seed S]   build the demo cohort as BIDS
    spectsynth check IMAGE [--subject ID] [--allow-4d]    validate one image, print what was found
    spectsynth config CONFIG.yaml                         validate a config, print it resolved
    spectsynth resources                                  list shipped templates/atlases and sources
    spectsynth checksum RESULTS [-o FILE] [--compare OTHER]   content checksums of a results folder;
                                                          compare two runs (OTHER: a table or a folder)
    spectsynth score-reading SHEET [SHEET ...] KEY [-o DIR]   score filled-in reading sheets against
                                                          their key: mean scores, comparison, agreement
    spectsynth plan [CONFIG ...]                          every experiment's dataset design (subjects and
                                                          images per split and condition), without running
    spectsynth realism REALISM_TSV [--readme README.md [--update]]   a run's realism table as Markdown;
                                                          check (or rewrite) the README's generated block
    spectsynth benchmarks [DIR] [--readme README.md [--update]]   the benchmark records (docs/benchmarks)
                                                          as Markdown; check (or rewrite) the README's block
    spectsynth results [--check]                          docs/results.md and the README's status block from the
                                                          reference runs kept in docs/results/ (--check: compare)
    spectsynth results collect RESULTS --study KEY --into DIR [--wall-s S] [--note T]   keep a reference run's small outputs
    spectsynth results power CONFIG ... [--update FILE]   power of the reference design's subject-level tests
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


def _checksum(args) -> int:
    from .checksums import DEFAULT_EXCLUDE, compare_digests, read_digests, tree_digests, write_digests
    from .errors import InputDataError

    if not args.results_dir.is_dir():
        raise InputDataError("not a folder", path=args.results_dir,
                             hint="Give the results folder of a run (its output_dir)")
    exclude = (*DEFAULT_EXCLUDE, *args.exclude)
    digests = tree_digests(args.results_dir, exclude=exclude)
    if args.output is not None:
        write_digests(digests, args.output)
        print(f"{len(digests)} content checksums of {args.results_dir} written to {args.output}")
    elif args.compare is None:
        for path, digest in digests.items():
            print(f"{digest}  {path}")
    if args.compare is None:
        return 0
    if args.compare.is_dir():
        other = tree_digests(args.compare, exclude=exclude)
    else:
        other = read_digests(args.compare)
    diff = compare_digests(digests, other)
    for key, label in (("differ", "differs"), ("only_a", f"only in {args.results_dir}"),
                       ("only_b", f"only in {args.compare}")):
        for path in diff[key]:
            print(f"{label}: {path}")
    n_bad = len(diff["differ"]) + len(diff["only_a"]) + len(diff["only_b"])
    print(f"{len(diff['same'])} files identical in content, {len(diff['differ'])} differ, "
          f"{len(diff['only_a']) + len(diff['only_b'])} in one run only")
    return 1 if n_bad else 0


def _score_reading(args) -> int:
    from .reading import score_reading, write_scores
    from .studies.published import reading_scores

    tables = score_reading(args.sheets, args.key, published=reading_scores())
    for name, table in tables.items():
        print(f"== {name}")
        print(table.to_string(index=False) if len(table) else "(none: needs two or more readers)")
    if args.output is not None:
        paths = write_scores(tables, args.output)
        print("written: " + ", ".join(str(p) for p in paths.values()))
    return 0


def _schema(args) -> int:
    from . import schema

    path = args.path or schema.SCHEMA_PATH
    if args.check:
        problems = schema.check(path)
        print("\n".join(problems) if problems else f"{path}: the generated schema")
        return 1 if problems else 0
    if args.write:
        print(f"written: {schema.write(path)}")
        return 0
    print(schema.render(schema.assemble()), end="")
    return 0


def _plan(args) -> int:
    import yaml

    from .config import merge, validate_config
    from .planner import format_plan, plan

    configs = args.configs or [Path("config/config.yaml")]
    cfg: dict = {}
    for path in configs:
        try:
            with open(path) as fh:
                cfg = merge(cfg, yaml.safe_load(fh) or {})
        except OSError as exc:
            from .errors import ConfigError
            raise ConfigError(f"cannot read config file {path} ({exc.strerror}); give existing YAML files, "
                              "e.g. config/config.yaml config/studies/s0.yaml") from None
    validate_config(cfg, args.schema)
    print(format_plan(plan(cfg), title="spectsynth plan: " + " + ".join(str(c) for c in configs)))
    return 0


def _headline(args) -> int:
    import pandas as pd

    from .headline import readme_block, render, update_readme

    table = pd.read_csv(args.table, sep="\t", dtype=str, keep_default_na=False)
    return _readme_block(args, render(table, title=args.title), readme_block, update_readme,
                         "generated block", "headline")


def _realism(args) -> int:
    from .realism import read, readme_block, render, update_readme

    return _readme_block(args, render(read(args.table), title=args.title), readme_block, update_readme,
                         "realism block", "realism")


def _benchmarks(args) -> int:
    from . import benchrecords as B
    from .headline import readme_block, update_readme

    def read_block(text: str) -> str | None:
        return readme_block(text, B.START, B.END)

    def write_block(text: str, block: str) -> str:
        return update_readme(text, block, B.START, B.END)

    return _readme_block(args, B.render(B.read(args.table)), read_block, write_block,
                         "benchmark block", "benchmarks")


def _readme_block(args, block: str, read_block, write_block, what: str, command: str) -> int:
    """Print ``block``, or check (``--readme``) or rewrite (``--update``) the README's copy of it."""
    if args.readme is None:
        print(block, end="")
        return 0
    text = args.readme.read_text()
    if args.update:
        from .io import write_text

        write_text(write_block(text, block), args.readme)
        print(f"{args.readme}: {what} rewritten from {args.table}")
        return 0
    if read_block(text) != block:
        print(f"{args.readme}'s {what} differs from what {args.table} gives; run "
              f"spectsynth {command} {args.table} --readme {args.readme} --update", file=sys.stderr)
        return 1
    print(f"{args.readme}: {what} matches {args.table}")
    return 0


def _results(args) -> int:
    from .io import write_text
    from .results_page import (
        PAGE_END,
        PAGE_START,
        POWER_END,
        POWER_START,
        block_of,
        collect,
        merged_config,
        power_block,
        readme_block,
        render_page,
        replace_block,
    )

    if args.action == "collect":
        files = collect(args.results_dir, args.study, args.into, wall_s=args.wall_s, note=args.note)
        print(f"{len(files)} files of {args.study} kept in {args.into}: " + ", ".join(files))
        return 0
    if args.action == "power":
        block = power_block(merged_config(args.configs, args.schema))
        if args.update is None:
            print(block, end="")
            return 0
        text = args.update.read_text()
        write_text(replace_block(text, block, POWER_START, POWER_END), args.update)
        print(f"{args.update}: power block rewritten")
        return 0
    page, status = render_page(args.root), readme_block(args.root)
    readme = args.readme.read_text() if args.readme.is_file() else None
    if args.check:
        stale = []
        if not args.out.is_file() or args.out.read_text() != page:
            stale.append(str(args.out))
        if readme is not None and block_of(readme) != status:
            stale.append(f"{args.readme}'s status block")
        if stale:
            print(f"{' and '.join(stale)} differ from what {args.root} gives; run spectsynth results",
                  file=sys.stderr)
            return 1
        print(f"{args.out} and {args.readme}'s status block match {args.root}")
        return 0
    write_text(page, args.out)
    print(f"{args.out} written from {args.root}")
    if readme is not None:
        if block_of(readme) is None:
            print(f"{args.readme} has no status block; put {PAGE_START!r} and {PAGE_END!r} where it goes",
                  file=sys.stderr)
            return 1
        write_text(replace_block(readme, status), args.readme)
        print(f"{args.readme}: status block rewritten")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .inputs.cohort import DEFAULT_N_SUBJECTS, DEFAULT_SEED

    parser = argparse.ArgumentParser(prog="spectsynth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="build the demo cohort as a BIDS dataset")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--n-subjects", type=int, default=DEFAULT_N_SUBJECTS)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
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
    p = sub.add_parser("schema", help="print, write or check the configuration schema assembled from the option fragments",
                       description="Assemble the configuration schema from the option fragments (options.yaml "
                                   "beside the packages, the studies and the model families; spectsynth.schema) "
                                   "and print it, write it to config/schema.yaml (--write) or check that the "
                                   "committed file is the generated one (--check; exit status 1 when not).")
    p.add_argument("--write", action="store_true")
    p.add_argument("--check", action="store_true")
    p.add_argument("--path", type=Path, default=None, help="default: config/schema.yaml of this checkout")
    p.set_defaults(func=_schema)
    p = sub.add_parser("resources", help="list templates and atlases and where they come from")
    p.set_defaults(func=_resources)
    p = sub.add_parser("checksum", help="content checksums of a results folder; compare two runs",
                       description="Content checksums of every result file (voxel data, tensors, table "
                                   "cells, pixels; not timestamps, timings, logs or benchmarks; see "
                                   "spectsynth.checksums). Exit status 1 when --compare finds a difference.")
    p.add_argument("results_dir", type=Path)
    p.add_argument("-o", "--output", type=Path, default=None, help="write path/method/digest as TSV")
    p.add_argument("--compare", type=Path, default=None,
                   help="a table written with -o, or another results folder")
    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="also skip paths (or path parts) matching this fnmatch pattern; repeatable")
    p.set_defaults(func=_checksum)
    p = sub.add_parser("score-reading", help="score filled-in reading sheets against their key",
                       description="Read the scoring sheets of a reading packet (one per reader; the reader "
                                   "column or else the file name names the reader) with the packet's key and "
                                   "print per-source mean scores, the comparison between sources and, with "
                                   "two or more readers, the inter-reader agreement (spectsynth.reading).")
    p.add_argument("sheets", type=Path, nargs="+", metavar="SHEET", help="filled scoring_sheet.csv files")
    p.add_argument("key", type=Path, metavar="KEY", help="the packet's key.csv")
    p.add_argument("-o", "--output", type=Path, default=None, help="folder for reading_{summary,comparison,"
                                                                   "agreement}.tsv")
    p.set_defaults(func=_score_reading)
    p = sub.add_parser("plan", help="print every experiment's dataset design without running the workflow",
                       description="Subjects and images per split and condition (S0: degradation set, S1: "
                                   "level x pattern) of every enabled experiment's dataset, computed from the "
                                   "configuration, the subject list and the simulation design alone (no image "
                                   "is read; spectsynth.design, the same code the dataset builder follows). "
                                   "CONFIG files are merged in order, as the workflow merges config/config.yaml "
                                   "and --configfile; default config/config.yaml.")
    p.add_argument("configs", type=Path, nargs="*", metavar="CONFIG")
    p.add_argument("--schema", type=Path, default=Path("config/schema.yaml"))
    p.set_defaults(func=_plan)
    p = sub.add_parser("headline", help="the verdict rows of a run as Markdown; check or rewrite the README's block",
                       description="Render a run's headline.tsv (every study's verdicts.tsv, rule headline) as "
                                   "Markdown; with --readme, check that the README's generated block is exactly "
                                   "that (exit status 1 when not), or rewrite it with --update.")
    p.add_argument("table", type=Path, metavar="HEADLINE_TSV")
    p.add_argument("--readme", type=Path, default=None)
    p.add_argument("--update", action="store_true")
    p.add_argument("--title", default="")
    p.set_defaults(func=_headline)
    p = sub.add_parser("realism", help="the realism table of a run as Markdown; check or rewrite the README's block",
                       description="Render a run's qc/realism.tsv (rule realism: each measured property of the "
                                   "simulated data beside its target band and source) as Markdown; with --readme, "
                                   "check that the README's realism block is exactly that (exit status 1 when "
                                   "not), or rewrite it with --update.")
    p.add_argument("table", type=Path, metavar="REALISM_TSV")
    p.add_argument("--readme", type=Path, default=None)
    p.add_argument("--update", action="store_true")
    p.add_argument("--title", default="")
    p.set_defaults(func=_realism)
    p = sub.add_parser("benchmarks", help="the kept benchmark records as Markdown; check or rewrite the README's "
                                          "block",
                       description="Render the records that the scripts in benchmarks/ write with --record "
                                   "(docs/benchmarks/*.tsv: each measure with its target, the verdict computed "
                                   "from them, the peer of the same run and the ratio) as Markdown; with --readme, "
                                   "check that the README's benchmark block is exactly that (exit status 1 when "
                                   "not), or rewrite it with --update.")
    p.add_argument("table", type=Path, nargs="?", default=Path("docs/benchmarks"), metavar="RECORDS_DIR")
    p.add_argument("--readme", type=Path, default=None)
    p.add_argument("--update", action="store_true")
    p.set_defaults(func=_benchmarks)
    p = sub.add_parser("results", help="docs/results.md from the kept reference runs; keep a run; power",
                       description="Without an action: write docs/results.md and the README's status block from "
                                   "the reference runs kept under docs/results/<study>/ (--check: exit status 1 "
                                   "when either differs instead). collect: copy a run's small outputs of one "
                                   "study into docs/results/<study>/. power: the power of the reference design's "
                                   "subject-level tests (spectsynth.results_page).")
    p.add_argument("--root", type=Path, default=Path("docs/results"))
    p.add_argument("--out", type=Path, default=Path("docs/results.md"))
    p.add_argument("--readme", type=Path, default=Path("README.md"))
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=_results, action=None)
    acts = p.add_subparsers(dest="action")
    q = acts.add_parser("collect", help="keep a reference run's small outputs of one study")
    q.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")
    q.add_argument("--study", required=True, metavar="KEY", help="the study's key (s0 ... s3: datasets.<key>)")
    q.add_argument("--into", type=Path, required=True)
    q.add_argument("--wall-s", type=float, default=None, help="the run's measured wall time in seconds")
    q.add_argument("--note", default="", help="how the run was made, where it bears on the wall time "
                   "(e.g. other work on the same cores); printed beside it")
    q = acts.add_parser("power", help="power of the reference design's subject-level tests")
    q.add_argument("configs", type=Path, nargs="+", metavar="CONFIG")
    q.add_argument("--schema", type=Path, default=Path("config/schema.yaml"))
    q.add_argument("--update", type=Path, default=None, help="rewrite this file's power block")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        return args.func(args)
    except SpectsynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
