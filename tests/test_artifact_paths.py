"""An experiment's artifact paths are spelled in one place (spectsynth.artifacts): the paths it
gives, and a static check that no rule file or package module spells them again."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import REPO

from spectsynth import artifacts as A

PKG = REPO / "src" / "spectsynth"
HOME = PKG / "artifacts.py"
# Names (and folder prefixes) only spectsynth.artifacts may spell outside comments and docstrings.
FORBIDDEN = ("best.pt", "selection.json", "history.csv", "loss_curve.png", "last.pt", "predictions.h5",
             "predictions.tsv", "experiments/", "predictions/")
# ... as whole names: "stack_predictions/" (a log folder) is not "predictions/"
SPELLS = re.compile("|".join(rf"(?<![\w-]){re.escape(name)}" for name in FORBIDDEN))


# ------------------------------------------------------------------ the path functions
def test_experiment_files_are_the_paths_the_workflow_has_always_written():
    f = A.experiment_files("results", "s3_pix2pix")
    assert f.root == "results/experiments/s3_pix2pix"
    assert f.best == "results/experiments/s3_pix2pix/best.pt"
    assert f.best_by_criterion("study_quantities") == "results/experiments/s3_pix2pix/best-study_quantities.pt"
    assert f.selection == "results/experiments/s3_pix2pix/selection.json"
    assert f.history == "results/experiments/s3_pix2pix/history.csv"
    assert f.config == "results/experiments/s3_pix2pix/config.resolved.yaml"
    assert f.loss_curve == "results/experiments/s3_pix2pix/loss_curve.png"
    assert f.tensorboard == "results/experiments/s3_pix2pix/tensorboard"
    assert f.declared == (f.best, f.selection, f.history, f.config, f.loss_curve)


def test_the_training_state_folder():
    c = A.experiment_files("/o", "e").checkpoints
    assert c.root == "/o/experiments/e/checkpoints"
    assert c.last == "/o/experiments/e/checkpoints/last.pt"
    assert c.best() == "/o/experiments/e/checkpoints/best.pt"
    assert c.best("feature_distance") == "/o/experiments/e/checkpoints/best-feature_distance.pt"
    assert c.epoch(7) == "/o/experiments/e/checkpoints/epoch-0007.pt"
    assert Path(c.epoch(12)).match(A.EPOCH_GLOB)
    assert c.stale("abc123") == "/o/experiments/e/checkpoints/stale-abc123"
    assert A.best_name() == "best.pt" and A.best_name("x") == "best-x.pt"


def test_wildcard_patterns_for_the_rules():
    """The defaults are the rules' patterns, spelled as the rules' f-strings spelled them."""
    out = "/tmp/res"
    e = A.experiment_files(out)
    assert e.best == f"{out}/experiments/{{experiment}}/best.pt"
    assert e.best_by_criterion("{criterion}") == f"{out}/experiments/{{experiment}}/best-{{criterion}}.pt"
    p = A.prediction_files(out)
    assert (p.h5, p.tsv) == (f"{out}/predictions/{{experiment}}/predictions.h5",
                             f"{out}/predictions/{{experiment}}/predictions.tsv")
    assert p.volumes == f"{out}/predictions/{{experiment}}/volumes"
    assert p.volumes_table == f"{out}/predictions/{{experiment}}/volumes/volumes.tsv"
    c = A.prediction_files(out, criterion="{criterion}")
    assert c.as_dict() == {"h5": f"{out}/predictions/{{experiment}}/criterion-{{criterion}}/predictions.h5",
                           "tsv": f"{out}/predictions/{{experiment}}/criterion-{{criterion}}/predictions.tsv"}


def test_prediction_files_of_an_experiment_and_a_criterion():
    assert A.prediction_files("r", "s1_fastgan_A").as_dict() == {
        "h5": "r/predictions/s1_fastgan_A/predictions.h5", "tsv": "r/predictions/s1_fastgan_A/predictions.tsv"}
    assert A.prediction_files("r", "s1_fastgan_A", "study_quantities").h5 == \
        "r/predictions/s1_fastgan_A/criterion-study_quantities/predictions.h5"


def test_regressor_files_and_folder_builders():
    r = A.regressor_files("results", "sbr_regressor")
    assert (r.best, r.training, r.learning_curve) == ("results/experiments/sbr_regressor/best.pt",
                                                      "results/experiments/sbr_regressor/training.tsv",
                                                      "results/experiments/sbr_regressor/learning_curve.png")
    assert A.regressor_files(None, "sbr_regressor").best == "experiments/sbr_regressor/best.pt"
    assert A.regressor_files_in(Path("a/b")).best == "a/b/best.pt"
    assert A.experiment_files_in(Path("/x/experiments/e")) == A.experiment_files("/x", "e")


@pytest.mark.parametrize("out", ["results", "results/", "./res", "/abs/path"])
def test_out_is_joined_as_given_not_normalised(out):
    """The rules and the studies get byte-identical strings whatever the spelling of output_dir."""
    assert A.experiment_files(out, "e").best == f"{out}/experiments/e/best.pt"
    assert A.prediction_files(out, "e").tsv == f"{out}/predictions/e/predictions.tsv"


def test_the_studies_ask_the_module():
    from spectsynth.studies import REGISTRY, Context

    ctx = Context("out", [], {"a": {"study": "S1", "selection_criterion": "feature_distance"}}, {})
    assert ctx.predictions("a") == A.prediction_files("out", "a").as_dict()
    assert ctx.predictions("a", "x") == A.prediction_files("out", "a", "x").as_dict()
    s1 = REGISTRY["S1"]
    assert s1.criterion_predictions(ctx, "a", "feature_distance") == ctx.predictions("a")
    assert s1.criterion_predictions(ctx, "a", "study_quantities")["h5"] == \
        "out/predictions/a/criterion-study_quantities/predictions.h5"
    assert REGISTRY["S0"].regressor_files("out").best == "out/experiments/sbr_regressor/best.pt"


def test_the_module_stays_light():
    """The Snakefile imports it while it builds the DAG: the standard library only."""
    tree = ast.parse(HOME.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "dataclasses", "os"}, imported


# ------------------------------------------------------------------ the static check
def _docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings or other bare string statements."""
    return {id(n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)}


def python_hits(path: Path) -> list[str]:
    """``path:line: 'literal'`` for every string constant (f-string parts included) that spells a
    forbidden name, docstrings and comments left out."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstring_nodes(tree)
    return [f"{path}:{n.lineno}: {n.value!r}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip
            and SPELLS.search(n.value)]


def workflow_hits(path: Path) -> list[str]:
    """The same for a Snakemake file: every line that is not a comment."""
    return [f"{path}:{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
            if not line.lstrip().startswith("#") and SPELLS.search(line)]


def _checked_files() -> tuple[list[Path], list[Path]]:
    py = sorted(p for p in PKG.rglob("*.py") if p != HOME) + sorted((REPO / "workflow" / "scripts").glob("*.py"))
    smk = sorted((REPO / "workflow" / "rules").glob("*.smk")) + [REPO / "Snakefile"]
    return py, smk


def test_no_artifact_path_is_spelled_outside_spectsynth_artifacts():
    py, smk = _checked_files()
    assert len(py) > 50 and len(smk) > 10
    found = [h for p in py for h in python_hits(p)] + [h for p in smk for h in workflow_hits(p)]
    assert not found, ("artifact paths spelled outside src/spectsynth/artifacts.py (use its "
                       "experiment_files / prediction_files):\n" + "\n".join(found))


def test_the_static_check_finds_a_literal_and_skips_docstrings_and_comments(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text('"""Writes best.pt."""\n# history.csv\n\n\ndef f(d):\n    """selection.json"""\n'
                   '    return d / "best.pt", f"{d}/predictions/{e}"\n')
    hits = python_hits(bad)
    assert len(hits) == 2 and all(":7:" in h for h in hits), hits
    rule = tmp_path / "r.smk"
    rule.write_text('# best.pt is the rule output\nrule a:\n    output:\n        f"{OUT}/experiments/x/history.csv",\n')
    assert [h.split(": ", 1)[0] for h in workflow_hits(rule)] == [f"{rule}:4"]
    assert A.BEST in FORBIDDEN and A.PREDICTION_H5 in FORBIDDEN   # the names the module spells
