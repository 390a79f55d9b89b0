"""Where an experiment's artifacts lie: the one place that spells their paths.

Under the output folder ``<out>``::

    experiments/<experiment>/              ExperimentFiles (train_model, train_fastgan)
        best.pt                            the selected epoch's inference networks
        best-<criterion>.pt                the best epoch under each selection criterion (families
                                           with ``selection_criteria``; best.pt is the configured one)
        selection.json                     the selection: metric, chosen epoch, scores
        history.csv                        one row per epoch
        config.resolved.yaml               the resolved experiment spec and its config hash
        loss_curve.png                     the losses and the validation score per epoch
        tensorboard/                       the same scalars for TensorBoard
        checkpoints/                       CheckpointFiles: the training state a rerun resumes from
            last.pt, epoch-XXXX.pt, best.pt, best-<criterion>.pt, stale-<hash>/
    experiments/<regressor>/               RegressorFiles (S0's binding-ratio CNN, its own short loop)
        best.pt, training.tsv, learning_curve.png
    predictions/<experiment>/              PredictionFiles (predict_experiment, stack_predictions)
        predictions.h5, predictions.tsv    the test split's predictions (of best.pt)
        volumes/                           paired predictions stacked onto each subject's grid
            volumes.tsv                    ... and their table (subject, record, file, calibration)
        criterion-<criterion>/             the same from best-<criterion>.pt (predict_criterion)
            predictions.h5, predictions.tsv

The rules take the wildcard patterns (the defaults ``experiment="{experiment}"``; pass
``criterion="{criterion}"``), the studies and the code that writes the files take concrete
names; both get the same strings, joined with ``/`` as given (``out`` is not normalised, so a
rule's declared path and the path a study asks for stay byte-identical).  The code that is handed
a folder (``spectsynth.train``, the regressor's training) uses the ``*_in(folder)`` builders.

Standard library only: the Snakefile imports this module while it builds the DAG.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

EXPERIMENTS_DIR = "experiments"
PREDICTIONS_DIR = "predictions"

# file and folder names inside an experiment's folder
BEST = "best.pt"
SELECTION = "selection.json"
HISTORY = "history.csv"
CONFIG = "config.resolved.yaml"
LOSS_CURVE = "loss_curve.png"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
# ... inside its checkpoints folder
LAST = "last.pt"
EPOCH_GLOB = "epoch-*.pt"
# ... inside a regressor's folder
TRAINING_TABLE = "training.tsv"
LEARNING_CURVE = "learning_curve.png"
# ... inside a predictions folder
PREDICTION_H5 = "predictions.h5"
PREDICTION_TSV = "predictions.tsv"
VOLUMES = "volumes"
VOLUMES_TABLE = "volumes.tsv"

WILDCARD_EXPERIMENT = "{experiment}"
WILDCARD_CRITERION = "{criterion}"


def best_name(criterion: str | None = None) -> str:
    """``best.pt``, or ``best-<criterion>.pt`` for the best epoch under one selection criterion."""
    return BEST if criterion is None else f"best-{criterion}.pt"


def _join(root: str | PathLike | None, *parts: str) -> str:
    return "/".join(([str(root)] if root is not None else []) + list(parts))


def experiment_dir(out: str | PathLike | None, experiment: str = WILDCARD_EXPERIMENT) -> str:
    """``<out>/experiments/<experiment>`` (``out`` None: relative to the output folder)."""
    return _join(out, EXPERIMENTS_DIR, experiment)


@dataclass(frozen=True)
class CheckpointFiles:
    """The training state under ``<experiment folder>/checkpoints`` (never a declared output:
    Snakemake would delete it before a rerun that resumes from it)."""

    root: str

    @property
    def last(self) -> str:
        """The full training state, the point a rerun resumes from."""
        return _join(self.root, LAST)

    def best(self, criterion: str | None = None) -> str:
        """The best epoch so far (under ``criterion``), kept across reruns."""
        return _join(self.root, best_name(criterion))

    def epoch(self, epoch: int) -> str:
        """A kept copy of ``last.pt`` after ``epoch`` (matched by :data:`EPOCH_GLOB`)."""
        return _join(self.root, f"epoch-{epoch:04d}.pt")

    def stale(self, config_hash: str) -> str:
        """Where the checkpoints of another configuration (``config_hash``) are moved aside."""
        return _join(self.root, f"stale-{config_hash}")


@dataclass(frozen=True)
class ExperimentFiles:
    """One experiment's folder, ``<out>/experiments/<experiment>``, and its files."""

    root: str

    @property
    def best(self) -> str:
        return _join(self.root, BEST)

    def best_by_criterion(self, criterion: str) -> str:
        return _join(self.root, best_name(criterion))

    @property
    def selection(self) -> str:
        return _join(self.root, SELECTION)

    @property
    def history(self) -> str:
        return _join(self.root, HISTORY)

    @property
    def config(self) -> str:
        return _join(self.root, CONFIG)

    @property
    def loss_curve(self) -> str:
        return _join(self.root, LOSS_CURVE)

    @property
    def tensorboard(self) -> str:
        return _join(self.root, TENSORBOARD)

    @property
    def checkpoints(self) -> CheckpointFiles:
        return CheckpointFiles(_join(self.root, CHECKPOINTS))

    @property
    def declared(self) -> tuple[str, ...]:
        """The training rule's outputs for every experiment, in the rule's order (``best``,
        ``selection``, ``history``, ``config``, ``loss_curve``); the per-criterion checkpoints
        come on top for the families that keep them."""
        return (self.best, self.selection, self.history, self.config, self.loss_curve)


def experiment_files(out: str | PathLike, experiment: str = WILDCARD_EXPERIMENT) -> ExperimentFiles:
    """The files of ``experiment`` under the output folder ``out`` (default: the rules' pattern)."""
    return ExperimentFiles(experiment_dir(out, experiment))


def experiment_files_in(folder: str | PathLike) -> ExperimentFiles:
    """The files of the experiment whose folder is ``folder`` (what the training job is handed)."""
    return ExperimentFiles(str(folder))


@dataclass(frozen=True)
class RegressorFiles:
    """The folder of a network trained by its own short loop beside the experiments (S0's
    binding-ratio CNN): its weights, its per-epoch table and its learning curve."""

    root: str

    @property
    def best(self) -> str:
        return _join(self.root, BEST)

    @property
    def training(self) -> str:
        return _join(self.root, TRAINING_TABLE)

    @property
    def learning_curve(self) -> str:
        return _join(self.root, LEARNING_CURVE)


def regressor_files(out: str | PathLike | None, name: str) -> RegressorFiles:
    """The files of the regressor ``name``, ``<out>/experiments/<name>`` (``out`` None: relative)."""
    return RegressorFiles(experiment_dir(out, name))


def regressor_files_in(folder: str | PathLike) -> RegressorFiles:
    return RegressorFiles(str(folder))


@dataclass(frozen=True)
class PredictionFiles:
    """One prediction folder: ``<out>/predictions/<experiment>`` (of ``best.pt``) or its
    ``criterion-<criterion>`` subfolder (of ``best-<criterion>.pt``)."""

    root: str

    @property
    def h5(self) -> str:
        return _join(self.root, PREDICTION_H5)

    @property
    def tsv(self) -> str:
        return _join(self.root, PREDICTION_TSV)

    @property
    def volumes(self) -> str:
        """The stacked volumes of a paired experiment (stack_predictions; the headline
        predictions' folder only)."""
        return _join(self.root, VOLUMES)

    @property
    def volumes_table(self) -> str:
        """The table of the stacked volumes, inside :attr:`volumes`."""
        return _join(self.volumes, VOLUMES_TABLE)

    def as_dict(self) -> dict[str, str]:
        """``{"h5": ..., "tsv": ...}``: the pair a rule's input or a study's evaluation reads."""
        return {"h5": self.h5, "tsv": self.tsv}


def prediction_files(out: str | PathLike, experiment: str = WILDCARD_EXPERIMENT,
                     criterion: str | None = None) -> PredictionFiles:
    """The predictions of ``experiment`` from ``best.pt`` (``criterion`` None) or from
    ``best-<criterion>.pt``."""
    root = _join(out, PREDICTIONS_DIR, experiment)
    return PredictionFiles(root if criterion is None else _join(root, f"criterion-{criterion}"))
