"""Every default has one source, and what the package reads is what the schema fills in.

Each option is declared once, in an option fragment beside its code (``options.yaml``; see
spectsynth.config and spectsynth.schema), and the Python defaults are read from the fragments
(``spectsynth.simulate.config.DEFAULTS``, ``Study.dataset_defaults``,
``spectsynth.experiments.TRAINING_DEFAULTS`` and ``COMMON_DEFAULTS``, the SBR regressor's
``DEFAULTS``, each family's ``DEFAULTS``); tests/test_schema_assembly.py fails on a default
written in Python. The tests here check the other half: that validation of the assembled schema
fills in exactly what the package reads (``inputs.demo`` is held to ``DemoParams`` in
test_demo_anatomy.py, ``preprocess.scan_brain_extraction`` to ``ScanBrainSettings`` here).

``experiments``: a family's settings and a study's published settings are the family's and the
study's; the schema gives those keys ``null`` ("take the family's / the study's") and says
which family or study each key belongs to, which must agree with the registries.

A drift fails with the key that differs.
"""

from __future__ import annotations

import re

import pytest

from spectsynth.config import schema_defaults
from spectsynth.experiments import COMMON_DEFAULTS, EXPERIMENT_KEYS, TRAINING_DEFAULTS
from spectsynth.models import FAMILY_DEFAULTS
from spectsynth.schema import assemble
from spectsynth.simulate.config import DEFAULTS as SIMULATE_DEFAULTS
from spectsynth.studies import DATASET_DEFAULTS, REGISTRY

STUDY_DEFAULTS = {s.name: s.training_defaults for s in REGISTRY.values()}
STUDY_FAMILIES = {s.name: s.families for s in REGISTRY.values()}


@pytest.fixture(scope="module")
def schema():
    return assemble()


def drift(python, schema, path: str) -> list[str]:
    """The keys where ``python`` and ``schema`` differ, one line each."""
    if isinstance(python, dict) and isinstance(schema, dict):
        out = []
        for key in sorted(set(python) | set(schema), key=str):
            where = f"{path}.{key}"
            if key not in schema:
                out.append(f"{where}: in the Python defaults ({python[key]!r}) but not in the schema")
            elif key not in python:
                out.append(f"{where}: in the schema ({schema[key]!r}) but not in the Python defaults")
            else:
                out += drift(python[key], schema[key], where)
        return out
    same_kind = isinstance(python, bool) == isinstance(schema, bool)
    if python != schema or not same_kind:
        return [f"{path}: Python default {python!r}, schema default {schema!r}"]
    return []


def test_drift_names_the_key():
    assert drift({"a": {"b": 1, "c": True}}, {"a": {"b": 2, "c": 1, "d": 0}}, "x") == [
        "x.a.b: Python default 1, schema default 2",
        "x.a.c: Python default True, schema default 1",
        "x.a.d: in the schema (0) but not in the Python defaults",
    ]


@pytest.mark.parametrize("key", sorted(DATASET_DEFAULTS))
def test_dataset_defaults_are_the_schemas(schema, key):
    assert drift(DATASET_DEFAULTS[key], schema_defaults(schema, f"datasets.{key}"), f"datasets.{key}") == []


def test_simulate_defaults_are_the_schemas(schema):
    assert drift(SIMULATE_DEFAULTS, schema_defaults(schema, "simulate"), "simulate") == []


def test_sbr_regressor_defaults_are_the_schemas(schema):
    from spectsynth.studies.s0.sbr_regressor import DEFAULTS as SBR_DEFAULTS

    assert drift(SBR_DEFAULTS, schema_defaults(schema, "evaluate.sbr_regressor"), "evaluate.sbr_regressor") == []


def test_scan_brain_extraction_defaults_are_the_schemas(schema):
    from spectsynth.preprocess.scan_brain import ScanBrainSettings

    assert drift(ScanBrainSettings().as_dict(), schema_defaults(schema, "preprocess.scan_brain_extraction"),
                 "preprocess.scan_brain_extraction") == []


def test_training_defaults_are_the_schemas(schema):
    assert drift(TRAINING_DEFAULTS, schema_defaults(schema, "training"), "training") == []


def _entry_defaults(schema, study="S2", model="pix2pix"):
    return schema_defaults(schema, "$defs/experiment", {"study": study, "model": model})


def test_experiment_keys_are_the_schemas(schema):
    in_schema = set(schema["$defs"]["experiment"]["properties"])
    assert sorted(in_schema - EXPERIMENT_KEYS) == [], "experiment keys in the schema only"
    assert sorted(EXPERIMENT_KEYS - in_schema) == [], "experiment keys in spectsynth.experiments only"


def test_common_defaults_are_the_schemas(schema):
    entry = _entry_defaults(schema)
    assert drift(COMMON_DEFAULTS, {k: entry[k] for k in COMMON_DEFAULTS if k in entry},
                 "experiments.<name>") == []


def test_family_and_study_settings_have_their_values_in_python_only(schema):
    """The schema leaves them null (= the family's, the study's), so no second copy can drift."""
    entry = _entry_defaults(schema)
    keys = set().union(*map(set, FAMILY_DEFAULTS.values()), *map(set, STUDY_DEFAULTS.values()))
    assert {k: entry[k] for k in sorted(keys) if entry[k] is not None} == {}


def _owners(schema, field):
    """key -> the values of ``field`` (model or study) whose entries may set it, from the
    schema's x-only-for branches (keys without a branch: every value)."""
    experiment = schema["$defs"]["experiment"]
    out = {}
    for branch in experiment["allOf"]:
        for pattern, sub in (branch.get("then", {}).get("patternProperties") or {}).items():
            owner = sub.get("x-only-for", {})
            if field in owner:
                for key in experiment["properties"]:
                    if re.search(pattern, key):
                        out[key] = set(out.get(key, owner[field])) & set(owner[field])
    return out


def test_family_settings_belong_to_the_families_of_FAMILY_DEFAULTS(schema):
    owners = _owners(schema, "model")
    for key in sorted(set().union(*map(set, FAMILY_DEFAULTS.values())) | set(owners)):
        python = {f for f, d in FAMILY_DEFAULTS.items() if key in d}
        if python == set(FAMILY_DEFAULTS):
            assert key not in owners, f"experiments.<name>.{key}: every family has it, the schema restricts it"
        else:
            assert owners.get(key) == python, (
                f"experiments.<name>.{key}: FAMILY_DEFAULTS gives it to {sorted(python)}, "
                f"the schema to {sorted(owners.get(key, FAMILY_DEFAULTS))}")


def test_study_families_are_the_schemas(schema):
    allowed = {}
    for branch in schema["$defs"]["experiment"]["allOf"]:
        cond = branch["if"].get("properties", {}).get("study", {})
        model = branch.get("then", {}).get("properties", {}).get("model")
        if model is None:
            continue
        for study in cond.get("enum", [cond.get("const")]):
            allowed[study] = tuple(model["enum"])
    assert allowed == STUDY_FAMILIES


def test_study_settings_belong_to_their_study(schema):
    assert _owners(schema, "study") == {"variants": {"S1"}, "inputs": {"S2"}, "spaces": {"S2"},
                                        "losses": {"S2"}}


def test_every_study_enum_is_the_registry(schema):
    """``studies:`` and an experiment's ``study:`` name exactly the registered studies."""
    from spectsynth.studies import REGISTRY

    assert schema["properties"]["studies"]["items"]["enum"] == list(REGISTRY)
    assert schema["$defs"]["experiment"]["properties"]["study"]["enum"] == list(REGISTRY)


def test_studies_selects_which_studies_run():
    from spectsynth.errors import ConfigError
    from spectsynth.experiments import expand_experiments

    entries = {"a": {"study": "S3", "model": "pix2pix"}, "b": {"study": "S0", "model": "vae"}}
    assert set(expand_experiments({"experiments": entries})) == {"a", "b"}
    assert set(expand_experiments({"experiments": entries, "studies": ["S0"]})) == {"b"}
    with pytest.raises(ConfigError, match="unknown study 'S7'"):
        expand_experiments({"experiments": entries, "studies": ["S7"]})
