"""The configuration schema is assembled from the option fragments and the registries.

* the committed ``config/schema.yaml`` is exactly the generated one;
* every fragment is read, each key path is declared once, and a clash is a clear error;
* enums that the registries own come from them (studies, families, selection metrics, which
  family serves which study, whose keys an entry may set);
* no default or enum is written a second time in Python: the package's defaults are read from
  the fragments (an AST check fails on a dict literal bound to a ``*DEFAULTS`` name, and on a
  study that sets its dataset defaults or entry keys in code), and no fragment spells out a list
  that a Python constant it could name (``x-from``) already holds.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest
import yaml

from spectsynth import schema as schema_mod
from spectsynth.config import EXPERIMENT_PREFIX, ConfigError, read_fragment, resolve_refs, validate_config
from spectsynth.models import REGISTRY as FAMILIES
from spectsynth.studies import REGISTRY as STUDIES

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "spectsynth"


@pytest.fixture(scope="module")
def assembled():
    return schema_mod.assemble()


def test_committed_schema_is_the_generated_one():
    assert schema_mod.check(REPO / "config" / "schema.yaml") == []


def test_check_names_a_stale_schema(tmp_path):
    stale = tmp_path / "schema.yaml"
    stale.write_text((REPO / "config" / "schema.yaml").read_text().replace("default: 1234", "default: 99", 1))
    assert "spectsynth schema --write" in schema_mod.check(stale)[0]


def test_rendered_schema_reads_back_as_the_assembled_one(assembled):
    assert yaml.safe_load(schema_mod.render(assembled)) == assembled


def test_every_fragment_is_a_mapping_of_key_paths():
    paths = schema_mod.fragments()
    assert PACKAGE / "options.yaml" in paths and len(paths) == 1 + 3 + len(STUDIES) + 3
    for path in paths[1:]:
        for key in read_fragment(path):
            assert key.replace("*", "x").replace(".", "").replace("_", "").isalnum(), (path, key)


def test_registry_enums(assembled):
    entry = assembled["$defs"]["experiment"]["properties"]
    assert entry["study"]["enum"] == list(STUDIES) == assembled["properties"]["studies"]["items"]["enum"]
    assert entry["model"]["enum"] == list(FAMILIES)
    metrics = {m for f in FAMILIES.values() for m in f.selection_metrics}
    assert set(entry["selection_metric"]["enum"]) == metrics | {None}
    assert entry["selection_criterion"]["enum"] == [*FAMILIES["fastgan"].selection_criteria, None]


def test_a_family_option_takes_null_and_names_each_familys_default(assembled):
    block = assembled["$defs"]["experiment"]["properties"]["base_channels"]
    assert block["type"] == ["integer", "null"] and block["default"] is None
    assert "vae, cvae:" in block["description"] and "(default 32)" in block["description"]
    assert "fastgan:" in block["description"] and "(default 16)" in block["description"]


def test_a_settings_of_another_family_or_study_is_named(assembled):
    cfg = {"experiments": {"x": {"study": "S1", "model": "fastgan", "ngf": 8}}}
    with pytest.raises(ConfigError, match=r"'ngf' is a setting of model pix2pix only and this entry's model is 'fastgan'"):
        validate_config(copy.deepcopy(cfg), assembled)
    cfg = {"experiments": {"x": {"study": "S3", "model": "pix2pix", "variants": ["A"]}}}
    with pytest.raises(ConfigError, match=r"'variants' is a setting of study S1 only"):
        validate_config(copy.deepcopy(cfg), assembled)
    cfg = {"experiments": {"x": {"study": "S1", "model": "pix2pix"}}}
    with pytest.raises(ConfigError, match=r"allowed for study S1: 'fastgan'"):
        validate_config(copy.deepcopy(cfg), assembled)


class _Fake:
    def __init__(self, package, selection_metrics=("ssim",), selection_criteria=()):
        self.package, self.selection_metrics, self.selection_criteria = package, selection_metrics, selection_criteria


def _fake_package(tmp_path, monkeypatch, name, fragment):
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "options.yaml").write_text(fragment)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_families_that_share_a_key_must_give_it_one_shape(tmp_path, monkeypatch):
    pkg = _fake_package(tmp_path, monkeypatch, "fakefamily",
                        "experiments.*.base_channels: {type: number, minimum: 0, default: 2.5, description: x}\n")
    families = {**FAMILIES, "fake": _Fake(pkg)}
    with pytest.raises(ConfigError, match="base_channels: declared differently"):
        schema_mod.assemble(families=families)


def test_a_key_declared_twice_is_an_error(tmp_path, monkeypatch):
    pkg = _fake_package(tmp_path, monkeypatch, "fakefamily2",
                        "experiments.*.epochs: {type: integer, minimum: 1, default: 3, description: x}\n")
    with pytest.raises(ConfigError, match="epochs"):
        schema_mod.assemble(families={**FAMILIES, "fake": _Fake(pkg)})


def test_x_from_names_a_python_value():
    assert resolve_refs({"enum": {"x-from": "spectsynth.labels:LEVELS"}}) == {"enum": ["CER", "BG", "COR"]}
    assert resolve_refs({"enum": {"x-from": "spectsynth.studies.s2:INPUTS"}})["enum"] == ["mri", "pet", "mri+pet"]
    with pytest.raises(ConfigError, match="names nothing"):
        resolve_refs({"default": {"x-from": "spectsynth.labels:NOPE"}})


# ------------------------------------------------------------------ written once

def _module_level_default_literals(path: Path, root: Path = PACKAGE) -> list[str]:
    """``NAME = {...}`` / ``NAME: T = {...}`` at module level, NAME ending in DEFAULTS, holding a
    literal value (a dict display with at least one constant)."""
    tree = ast.parse(path.read_text())
    out = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        value = getattr(node, "value", None)
        for t in targets:
            if isinstance(t, ast.Name) and t.id.endswith("DEFAULTS") and isinstance(value, ast.Dict):
                if any(isinstance(v, ast.Constant) for v in ast.walk(value)):
                    out.append(f"{path.relative_to(root)}:{node.lineno} {t.id}")
    return out


def test_no_defaults_are_written_in_python():
    found = [hit for p in sorted(PACKAGE.rglob("*.py")) for hit in _module_level_default_literals(p)]
    assert found == [], "defaults written in Python; declare them in an options.yaml and read them from it"


def test_the_check_finds_a_literal(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text('X_DEFAULTS = {"a": 1}\nY_DEFAULTS = dict()\nZ_DEFAULTS: dict = {"b": [2]}\n')
    assert _module_level_default_literals(bad, tmp_path) == ["probe.py:1 X_DEFAULTS", "probe.py:3 Z_DEFAULTS"]


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_studies_read_dataset_defaults_and_entry_keys_from_their_fragment(name):
    study = STUDIES[name]
    own = vars(type(study))
    assert "dataset_defaults" not in own and "entry_keys" not in own
    fragment = read_fragment(study.options_path())
    assert f"datasets.{study.key}" in fragment
    assert study.entry_keys == tuple(k[len(EXPERIMENT_PREFIX):] for k in fragment if k.startswith(EXPERIMENT_PREFIX))


def _literal_lists(node, path=""):
    if isinstance(node, dict):
        if set(node) == {"x-from"}:
            return
        for k, v in node.items():
            if k in ("enum", "default") and isinstance(v, list) and len(v) > 1:
                yield f"{path}.{k}", v
            yield from _literal_lists(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _literal_lists(v, f"{path}[{i}]")


# Python constants a fragment names with x-from instead of copying them.
OWNED = ["spectsynth.labels:LEVELS", "spectsynth.labels:PATTERNS", "spectsynth.studies.s1:VARIANTS",
         "spectsynth.studies.s2:INPUTS", "spectsynth.studies.s2:SPACES", "spectsynth.studies.s2:LOSSES",
         "spectsynth.studies.s0:DESIGN_SETS"]


def test_no_fragment_copies_a_list_that_python_owns():
    owned = {name: resolve_refs({"enum": {"x-from": name}})["enum"] for name in OWNED}
    copies = []
    for path in schema_mod.fragments():
        with open(path) as fh:
            raw = yaml.safe_load(fh)
        for where, values in _literal_lists(raw):
            for name, value in owned.items():
                if [v for v in values if v is not None] == value:
                    copies.append(f"{path.relative_to(PACKAGE)} {where}: write {{x-from: {name!r}}}")
    assert copies == []


# Settings dataclasses built from a config block: their fields take the declared defaults.
SETTINGS = ["spectsynth.anatomy:AnatomySettings", "spectsynth.inputs.demo:DemoParams",
            "spectsynth.preprocess.register:RegistrationSettings", "spectsynth.preprocess.brain:BrainSettings",
            "spectsynth.preprocess.scan_brain:ScanBrainSettings"]


def _literal(node) -> bool:
    return isinstance(node, ast.Constant) or (isinstance(node, (ast.Tuple, ast.List))
                                               and all(isinstance(e, ast.Constant) for e in node.elts))


def test_settings_classes_take_their_defaults_from_the_declaration():
    import dataclasses
    import importlib

    found = []
    for name in SETTINGS:
        module_name, _, cls_name = name.partition(":")
        module = importlib.import_module(module_name)
        declared = module._DECLARED
        cls = getattr(module, cls_name)
        tree = ast.parse(Path(module.__file__).read_text())
        body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name).body
        for node in body:
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and node.target.id in declared and node.value is not None and _literal(node.value)):
                found.append(f"{name}.{node.target.id}")
        fields = {f.name: f.default for f in dataclasses.fields(cls) if f.name in declared}
        assert set(declared) <= set(fields), f"{name}: declared options without a field"
        assert {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()} == declared, name
    assert found == [], "defaults written in Python; read them from the declaration (_DECLARED)"


def _python_string_tuples() -> list[tuple[str, list]]:
    """Module-level ``NAME = ("a", "b", ...)`` literals of the package (two or more strings)."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
            value = getattr(node, "value", None)
            if (isinstance(target, ast.Name) and isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) > 1
                    and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts)):
                out.append((f"{path.relative_to(PACKAGE)}:{target.id}", [e.value for e in value.elts]))
    return out


def test_no_python_constant_repeats_the_choices_of_an_option():
    """The choices an option offers are written once: in its fragment (and code reads them with
    spectsynth.config.declared), or in code (and the fragment names them with x-from)."""
    written = []
    for path in schema_mod.fragments():
        with open(path) as fh:
            written += [(f"{path.relative_to(PACKAGE)} {where}", values)
                        for where, values in _literal_lists(yaml.safe_load(fh)) if where.endswith(".enum")]
    repeats = [f"{name} {values} repeats {where}" for name, values in _python_string_tuples()
               for where, enum in written if set(values) == {v for v in enum if v is not None}]
    assert repeats == []
