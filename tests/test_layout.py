"""The layout: each study lives in one place (spectsynth.studies), and a new study needs no edit
elsewhere in the package or the rules."""

from __future__ import annotations

import ast
import copy
import io
import tokenize
from pathlib import Path

import pytest
from conftest import REPO

from spectsynth.studies import REGISTRY, Output, Study, dataset_names

STUDIES_DIR = REPO / "src" / "spectsynth" / "studies"


def _study_words() -> set[str]:
    words = {s.name for s in REGISTRY.values()} | {s.key for s in REGISTRY.values()}
    return words | set(dataset_names({}))


def _code_files() -> list[Path]:
    files = [p for p in (REPO / "src" / "spectsynth").rglob("*.py") if STUDIES_DIR not in p.parents]
    files += sorted((REPO / "workflow" / "scripts").glob("*.py"))
    files += sorted((REPO / "workflow" / "rules").glob("*.smk")) + [REPO / "Snakefile"]
    return files


def _string_literals(path: Path):
    """(line, value) of every plain string literal in a Python or Snakemake file (f-strings and
    docstring-like prose included as their text)."""
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type != tokenize.STRING:
            continue
        try:
            value = ast.literal_eval(tok.string)
        except (ValueError, SyntaxError):
            continue                     # an f-string: its parts are names, not study literals
        if isinstance(value, str):
            yield tok.start[0], value


def test_no_study_literal_outside_the_studies_package():
    words = _study_words()
    found = [f"{p.relative_to(REPO)}:{line}: {value!r}" for p in _code_files()
             for line, value in _string_literals(p) if value in words]
    assert not found, ("study names as literals outside src/spectsynth/studies (ask the registry "
                       "instead):\n" + "\n".join(found))


def test_the_literal_check_finds_one(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text('if spec["study"] == "S1":\n    pass\nname = f"{key}_native"\n')
    assert [v for _, v in _string_literals(bad) if v in _study_words()] == ["S1"]


class _Toy(Study):
    """A fifth study, paired like S3: registered at run time to show the protocol is enough."""

    name = "S9"
    key = "s9"
    families = ("pix2pix",)
    training_defaults = {"epochs": 5, "batch_size": 2, "lr": 1e-4, "betas": [0.5, 0.999], "selection_metric": "ssim"}
    options = ""                           # no fragment: its defaults given here (the package below has one)
    dataset_defaults = copy.deepcopy(REGISTRY["S3"].dataset_defaults)
    channels = roles = ("spect_cbf", "pet_cbf")
    report_category = "9. Results S9"
    evaluation = {"summary": Output("{experiment}/summary.tsv", "evaluate_s3.rst", "{experiment}", ("table", "x"))}

    def subject_files(self, dataset, out, subject, sim):
        return {r: f"{out}/sub-{subject}/{r}.nii.gz" for r in self.roles}


@pytest.fixture()
def toy_study(monkeypatch):
    from spectsynth import studies

    toy = _Toy()
    monkeypatch.setitem(studies.REGISTRY, toy.name, toy)
    monkeypatch.setitem(studies.BY_KEY, toy.key, toy)
    return toy


def test_a_new_study_needs_only_its_registry_entry(toy_study):
    from spectsynth.experiments import expand_experiments
    from spectsynth.studies import Context, dataset_spec, dataset_subject_files

    assert "s9" in dataset_names({})
    spec = dataset_spec({}, "s9")
    assert spec["study"] == "S9" and spec["n_slices"] == 20
    runs = expand_experiments({"experiments": {"toy": {"study": "S9", "model": "pix2pix"}}})
    assert runs["toy"]["dataset"] == "s9" and runs["toy"]["epochs"] == 5
    assert runs["toy"]["input_channels"] == ["spect_cbf"] and runs["toy"]["target_channels"] == ["pet_cbf"]
    ctx = Context("/out", ["01"], runs, {})
    assert toy_study.evaluation_targets(ctx) == ["/out/evaluate/s9/toy/summary.tsv"]
    assert dataset_subject_files("s9", "/out", ["01"], {})["01"]["pet_cbf"] == "/out/sub-01/pet_cbf.nii.gz"
    with pytest.raises(Exception, match="does not serve study S9"):
        expand_experiments({"experiments": {"toy": {"study": "S9", "model": "fastgan"}}})


TOY_PACKAGE = '''
from spectsynth.studies import Output, Study


class Toy(Study):
    name = "S9"
    key = "s9"
    rules = "rules.smk"
    families = ("pix2pix",)
    training_defaults = {"epochs": 5, "batch_size": 2, "lr": 1e-4, "betas": [0.5, 0.999],
                         "selection_metric": "ssim"}
    channels = roles = ("spect_cbf", "pet_cbf")
    evaluation = {"summary": Output("{experiment}/summary.tsv", "toy_summary.rst", "{experiment}", ("table", "x"))}


STUDY = Toy()
'''
# The toy study's options: its dataset block and an option of its own, which its rule reads.
TOY_OPTIONS = '''
datasets.s9:
  type: object
  additionalProperties: false
  default: {}
  description: The toy study's slice pairs.
  properties:
    size: {$ref: "#/$defs/slice_size"}
    n_slices: {$ref: "#/$defs/n_slices"}
    normalise: {$ref: "#/$defs/normalise", default: max_pm1}
    extent_threshold: {$ref: "#/$defs/extent_threshold", default: 0.25}
    split: {$ref: "#/$defs/split"}
    augment: {$ref: "#/$defs/paired_augment"}
evaluate.toy_greeting:
  type: string
  enum: [hello, bonjour]
  default: hello
  description: What the toy study's own rule writes.
'''
TOY_RULES = '''
rule toy_study_extra:
    output:
        f"{OUT}/toy/extra.txt",
    params:
        greeting=config["evaluate"]["toy_greeting"],
    shell:
        "echo {params.greeting} {SUBJECTS} > {output}"


TARGETS.append(lambda: [f"{OUT}/toy/extra.txt"])
'''
# Registers the toy study before the Snakefile is read, then plans the tiny run through Snakemake's CLI.
TOY_RUNNER = ("import sys\nfrom spectsynth import studies\nimport toystudy\n"
              "studies.REGISTRY['S9'] = studies.BY_KEY['s9'] = toystudy.STUDY\n"
              "from snakemake.cli import main\nsys.exit(main(sys.argv[1:]))\n")


def _toy_package(tmp_path):
    pkg = tmp_path / "toystudy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(TOY_PACKAGE)
    (pkg / "options.yaml").write_text(TOY_OPTIONS)
    (pkg / "rules.smk").write_text(TOY_RULES)
    (pkg / "toy_summary.rst").write_text("The toy study's summary of {{ snakemake.wildcards.experiment }}.\n")
    return pkg


def test_a_fifth_studys_options_join_the_schema(tmp_path, monkeypatch):
    """Its fragment's blocks are placed into the assembled schema: its option validates, takes its
    default, and a wrong value is named; its dataset defaults come from its fragment."""
    import importlib

    from spectsynth import studies
    from spectsynth.config import validate_config
    from spectsynth.errors import ConfigError
    from spectsynth.schema import assemble

    _toy_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    toy = importlib.import_module("toystudy").STUDY
    monkeypatch.setitem(studies.REGISTRY, toy.name, toy)
    monkeypatch.setitem(studies.BY_KEY, toy.key, toy)
    schema = assemble()
    assert schema["properties"]["studies"]["items"]["enum"][-1] == "S9"
    cfg = validate_config({"evaluate": {"toy_greeting": "bonjour"}}, schema)
    assert cfg["evaluate"]["toy_greeting"] == "bonjour" and cfg["datasets"]["s9"]["normalise"] == "max_pm1"
    assert validate_config({}, schema)["evaluate"]["toy_greeting"] == "hello"
    with pytest.raises(ConfigError, match=r"config key 'evaluate.toy_greeting': value 'hi' is not allowed"):
        validate_config({"evaluate": {"toy_greeting": "hi"}}, schema)
    assert toy.dataset_defaults["extent_threshold"] == 0.25 and toy.entry_keys == ()
    assert dataset_names({})[-1] == "s9"
    # its report captions in its folder too; the built-in studies' own in workflow/report/
    assert toy.caption_path("toy_summary.rst", "/shared") == str(tmp_path / "toystudy" / "toy_summary.rst")
    assert REGISTRY["S3"].caption_path("evaluate_s3.rst", "/shared") == "/shared/evaluate_s3.rst"


def test_a_fifth_study_brings_its_own_rules_and_the_workflow_plans_them(tmp_path):
    """A study package with its own options and its own rule file (Study.options, Study.rules) is
    included by the Snakefile's loop over the registry: the workflow validates its option against
    the assembled schema and plans its rule, which reads the option, beside the shared stages;
    nothing else is edited."""
    import os
    import subprocess
    import sys

    _toy_package(tmp_path)
    overlay = tmp_path / "toy.yaml"
    overlay.write_text(f"output_dir: {tmp_path / 'out'}\nevaluate:\n  toy_greeting: bonjour\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", TOY_RUNNER, "-n", "-p", "--snakefile", str(REPO / "Snakefile"),
                          "--directory", str(REPO), "--configfile", "tests/configs/tiny.yaml", str(overlay)],
                         capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "rule toy_study_extra:" in res.stdout and f"{tmp_path / 'out'}/toy/extra.txt" in res.stdout
    assert "echo bonjour " in res.stdout                 # its own option, read by its own rule
    assert "rule s0_clinical:" in res.stdout              # S0's own rules, from its package, still there


def test_a_missing_own_file_names_it_and_what_to_do():
    class Broken(_Toy):
        options = "missing.yaml"
        rules = "missing.smk"

    with pytest.raises(Exception, match=r"study S9: its option fragment .*missing\.yaml does not exist\. "
                                        r"Put missing\.yaml beside the study's module or clear Study\.options"):
        Broken().options_path()
    with pytest.raises(Exception, match=r"its rule file .*missing\.smk does not exist.*clear Study\.rules"):
        Broken().rules_path()
