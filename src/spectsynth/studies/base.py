"""The protocol every study implements, and the workflow context the studies' rule functions read.

A study (:class:`Study`) owns everything that makes it *that* study:

* its published training settings (:attr:`Study.training_defaults`), the model families that
  may serve it (:attr:`Study.families`) and how a compact ``experiments:`` entry expands into
  runs (:meth:`Study.expand`);
* its slice datasets: their names (:meth:`Study.dataset_names`), default settings
  (:attr:`Study.dataset_defaults`), the files each subject contributes
  (:meth:`Study.subject_files`), the dataset entries made from them (:meth:`Study.entries`),
  how slices are cut from one record (:meth:`Study.extract`) and the design of each split
  (:meth:`Study.design`);
* its evaluation: the outputs with their report captions (:attr:`Study.evaluation`), the
  rule's inputs and params (:meth:`Study.evaluation_inputs`, :meth:`Study.evaluation_params`)
  and the evaluation itself (``run`` in the study's ``evaluate.py``, which the rule's script
  imports by the study's key, so that planning never imports the evaluation code);
* its blinded visual reading, if it has one (:attr:`Study.reading`; ``reading_packet`` in the
  study's ``evaluate.py``);
* its published values (``published.py`` beside the study, read by :mod:`spectsynth.studies.published`).

Generic code (:mod:`spectsynth.experiments`, :mod:`spectsynth.datasets`,
:mod:`spectsynth.design`, the rules) asks the registry (:mod:`spectsynth.studies`) instead of
testing a study's name. Importing a study module imports neither torch nor the evaluation
code: the workflow reads the registry while it builds the DAG.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..artifacts import prediction_files
from ..config import EXPERIMENT_PREFIX, fragment_defaults, read_fragment
from ..errors import ConfigError
from ..mapping import merge  # noqa: F401  (the studies merge their blocks with it)


@dataclass(frozen=True)
class Output:
    """One evaluation output: its path below ``<output_dir>/evaluate/<study key>/`` (with
    ``{experiment}`` for studies evaluated per experiment), its report caption (a file beside the
    study's module, or in workflow/report/: :meth:`Study.caption_path`), its report subcategory
    and label; ``report=False`` for an output the
    report does not show; ``directory=True`` for a folder."""

    path: str
    caption: str | None = None
    subcategory: str = "{experiment}"
    label: tuple[str, str] | None = None
    report: bool = True
    directory: bool = False


def fail(name: str, problem: str, hint: str) -> ConfigError:
    """The error of an experiment entry that cannot be expanded."""
    return ConfigError(f"experiment {name}: {problem}. {hint}")


def as_list(value: Any, default: Sequence) -> list:
    if value is None:
        return list(default)
    return list(value) if isinstance(value, (list, tuple)) else [value]


@dataclass(frozen=True)
class Similarity:
    """An input-vs-target pair whose SSIM the scan QC measures on the study's slices, with the
    value the study reports for it (None: it reports none) and a note."""

    input: str
    target: str
    label: str
    published: float | None
    note: str
    # the band of real data for the whole-slice SSIM (spectsynth.realism; None: open side),
    # its source (short citation) and why
    band_low: float | None = None
    band_high: float | None = None
    band_source: str = ""
    band_note: str = ""


def truth_table(path, subject: str):
    """A simulator truth table (TSV) as a DataFrame; a clear error when it is missing."""
    from pathlib import Path

    import pandas as pd

    from ..errors import InputDataError

    p = Path(path)
    if not p.exists():
        raise InputDataError("simulation truth table is missing", subject=subject, path=p,
                             hint="Rerun the simulation of this subject")
    return pd.read_csv(p, sep="\t", keep_default_na=False)


@dataclass
class Context:
    """What the workflow knows while it plans: the output folder, the subjects, the resolved
    experiments and the configuration. Made once in common.smk; the studies' rule functions
    read it instead of the rule files' globals."""

    out: str
    subjects: list[str]
    experiments: dict[str, dict]
    config: dict
    sim: dict = field(default_factory=dict)

    def shards(self, dataset: str) -> dict[str, str]:
        d = f"{self.out}/datasets/{dataset}"
        return {s: f"{d}/{s}.h5" for s in ("train", "val", "test")} | {"index": f"{d}/index.tsv"}

    def predictions(self, experiment: str, criterion: str | None = None) -> dict[str, str]:
        """``{"h5", "tsv"}`` of the predictions of ``experiment`` from its ``best.pt``, or from
        the best checkpoint under ``criterion`` (:func:`spectsynth.artifacts.prediction_files`)."""
        return prediction_files(self.out, experiment, criterion).as_dict()

    def experiments_of(self, study: str) -> list[str]:
        return sorted(e for e, s in self.experiments.items() if s.get("study") == study)

    def verdict_files(self) -> dict[str, str]:
        """Every enabled study's verdict table -> its experiment (see :mod:`spectsynth.headline`)."""
        from . import verdict_files

        return verdict_files(self)


@cache
def _fragment_defaults(path: str, key: str) -> Any:
    return fragment_defaults(path, key)


class Study:
    """Base class of the four studies (see the module docstring). Subclasses set the class
    attributes and override the methods their study needs."""

    name: str = ""                         # "S2": the value of ``study:`` in an experiment
    key: str = ""                          # "s2": datasets.<key>, evaluate/<key>/, rule suffix
    families: tuple[str, ...] = ()
    training_defaults: dict[str, Any] = {}
    # The study's options: a fragment beside its module (config key paths -> schema blocks: its
    # ``datasets.<key>`` block, ``evaluate.<name>`` blocks and the ``experiments.*.<key>`` keys only
    # its entries read), placed into the configuration schema by spectsynth.schema. Its dataset
    # defaults (:attr:`dataset_defaults`) and entry keys (:attr:`entry_keys`) are read from it.
    options: str = "options.yaml"
    channels: tuple[str, ...] = ()         # channels of the dataset shards
    roles: tuple[str, ...] = ()            # roles of a dataset record's volumes
    condition_columns: tuple[str, ...] = ()
    report_category: str = ""
    per_experiment: bool = True            # evaluated per experiment (else once per study)
    evaluation: dict[str, Output] = {}
    evaluation_param_names: tuple[str, ...] = ()   # keys of evaluation_params (rule params)
    stamp: str = ""                        # the evaluation output the provenance stamp names
    val_within_train = False               # the study's validation images may come from training subjects
    input_similarity: tuple[Similarity, ...] = ()   # input-vs-target SSIM the scan QC measures
    similarity_dataset: str = ""          # ... on this dataset's slices
    # the realism table's ROI line of the data itself on similarity_dataset (spectsynth.realism):
    # input/target channels, the labels, the published line and the band of r, with their source
    realism_roi: Mapping[str, Any] | None = None
    # the study's own Snakemake rules: a .smk file beside the study's module (e.g. "rules.smk"),
    # included by the Snakefile's loop over the registry; "" when the shared stages are all it needs
    rules: str = ""
    # Where the cohort's post-surgical (resected) subjects go: None = nowhere (left out of every
    # split: none of the papers but S2 had post-surgical brains); S2: "test" (its unseen set).
    resected_split: str | None = None
    reading = False                        # has a blinded visual reading (reading_packet)

    # ------------------------------------------------------------------ experiments
    def expand(self, name: str, model: str, entry: Mapping, cfg: Mapping) -> list[tuple[str, dict]]:
        """(run name, run-specific settings) of one ``experiments:`` entry."""
        return [(name, {"dataset": self.key, "size": self.size(cfg, name),
                        "input_channels": list(self.channels[:-1]), "target_channels": [self.channels[-1]]})]

    def size(self, cfg: Mapping, name: str, key: str | None = None) -> int:
        key = key or self.key
        ds = (cfg.get("datasets") or {}).get(key) or {}
        size = int(ds.get("size", self.dataset_defaults["size"]))
        if size < 32 or size & (size - 1):
            raise fail(name, f"datasets.{key}.size is {size}", "Use a power of two >= 32 (32, 64, 128, 256)")
        return size

    # ------------------------------------------------------------------ datasets
    def dataset_names(self, spec: Mapping) -> list[str]:
        """Names of this study's datasets given its resolved ``datasets.<key>`` settings."""
        return [self.key]

    def resolve_dataset(self, spec: dict, name: str) -> None:
        """Study-specific checks and derived settings of one dataset's spec (in place)."""

    def subject_files(self, dataset: str, out: str, subject: str, sim: Mapping) -> dict[str, str]:
        """The files one subject contributes to ``dataset`` (keys as :meth:`entries` reads them)."""
        raise NotImplementedError

    def entries(self, dataset: str, subject: str, files: Mapping[str, str]) -> list[dict]:
        """Dataset entries of one subject (see :func:`spectsynth.datasets.records_from_files`)."""
        space = dataset.split("_", 1)[1] if "_" in dataset else "native"
        return [{"subject": subject, "files": {r: files[r] for r in self.roles}, "levels": None,
                 "pattern": "normal", "space": space, "params": {}}]

    def check_dataset(self, table, spec: Mapping) -> None:
        """Study-specific checks of a built dataset's index table (raise a ConfigError)."""

    def keeps_record(self, rec: Mapping, spec: Mapping) -> bool:
        return True

    def extract(self, rec: Mapping, vols: Mapping, base: Mapping, spec: Mapping) -> Iterator[tuple]:
        """Slices of one record: yields ``(image (C, size, size), row)``."""
        from ..datasets import paired_slices

        return paired_slices(self, rec, vols, base, spec)

    def design(self, design, spec: Mapping, n: Mapping[str, int], cfg: Mapping) -> list[dict]:
        """Rows (split, condition columns, images) of a dataset's expected counts; notes go to
        ``design.notes``."""
        k = int(spec["n_slices"])
        design.notes.append(f"{k} axial slices per subject")
        return [{"split": split, "images": n[split] * k} for split in ("train", "val", "test")]

    def record_split(self, design, rec: Mapping, split: str) -> str | None:
        return split

    # ------------------------------------------------------------------ its own files
    @property
    def folder(self) -> Path:
        """The folder of the study's module: where its own options, rules and captions lie."""
        return Path(sys.modules[type(self).__module__].__file__).parent

    def _own_file(self, name: str, what: str, attribute: str) -> Path | None:
        """``name`` beside the study's module (None when ``name`` is empty); a named file that is
        not there stops with what to do."""
        if not name:
            return None
        path = self.folder / name
        if not path.is_file():
            raise ConfigError(f"study {self.name}: its {what} {path} does not exist. "
                              f"Put {name} beside the study's module or clear Study.{attribute}")
        return path

    def options_path(self) -> Path | None:
        """The absolute path of the study's option fragment (:attr:`options`), or None."""
        return self._own_file(self.options, "option fragment", "options")

    @property
    def dataset_defaults(self) -> dict[str, Any]:
        """What ``datasets.<key>`` holds in a config that sets nothing (from the study's fragment)."""
        path = self.options_path()
        return copy.deepcopy(_fragment_defaults(str(path), f"datasets.{self.key}")) if path else {}

    @property
    def entry_keys(self) -> tuple[str, ...]:
        """Keys of an ``experiments:`` entry that only this study reads (its ``experiments.*.<key>``)."""
        path = self.options_path()
        if path is None:
            return ()
        return tuple(k[len(EXPERIMENT_PREFIX):] for k in read_fragment(path) if k.startswith(EXPERIMENT_PREFIX))

    def caption_path(self, caption: str, shared: str) -> str:
        """Where a report caption of the study lies: its own file beside its module when it has
        one (a new study ships its captions in its folder), else in the shared folder ``shared``
        (workflow/report/)."""
        own = self.folder / caption
        return str(own) if own.is_file() else f"{shared}/{caption}"

    # ------------------------------------------------------------------ rules
    def rules_path(self) -> str | None:
        """The absolute path of the study's own rule file (:attr:`rules`), or None."""
        path = self._own_file(self.rules, "rule file", "rules")
        return None if path is None else str(path)

    # ------------------------------------------------------------------ evaluation
    def evaluation_paths(self, out: str) -> dict[str, str]:
        return {k: f"{out}/evaluate/{self.key}/{o.path}" for k, o in self.evaluation.items()}

    def evaluation_targets(self, ctx: Context) -> list[str]:
        exps = ctx.experiments_of(self.name)
        if not exps:
            return []
        paths = list(self.evaluation_paths(ctx.out).values())
        if not self.per_experiment:
            return paths
        return [p.format(experiment=e) for e in exps for p in paths]

    @property
    def evaluation_stem(self) -> str:
        """File stem of the evaluation rule's log and benchmark: the experiment, or the rule's name."""
        return "{experiment}" if self.per_experiment else f"evaluate_{self.key}"

    def evaluation_inputs(self, ctx: Context, wildcards) -> dict[str, Any]:
        raise NotImplementedError

    def evaluation_params(self, ctx: Context, wildcards) -> dict[str, Any]:
        return {}

    def reading_inputs(self, ctx: Context, wildcards) -> dict[str, Any]:
        raise NotImplementedError
