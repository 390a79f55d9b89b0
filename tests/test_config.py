"""Config validation: one-line errors naming key, value and what is allowed; defaults."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from spectsynth.config import load_config, validate_config
from spectsynth.errors import ConfigError


@pytest.fixture()
def schema(repo):
    return repo / "config" / "schema.yaml"


def test_default_config_is_valid_and_filled(repo, schema):
    cfg = load_config(repo / "config" / "config.yaml", schema=schema)
    assert cfg["inputs"]["source"] == "demo"
    assert cfg["inputs"]["demo"]["n_subjects"] == 12
    # defaults from the schema are filled in
    assert cfg["inputs"]["demo"]["max_rotation_deg"] == 15
    assert cfg["inputs"]["allow_4d"] is False


def _merge(doc, base, local):
    """``local`` over ``base`` (a referencing site over the block it references), key by key
    down through ``properties``."""
    base, local = _effective(doc, base), _effective(doc, local)
    out = {**base, **local}
    props = dict(base.get("properties", {}))
    for key, sub in local.get("properties", {}).items():
        props[key] = _merge(doc, props.get(key, {}), sub)
    if props:
        out["properties"] = props
    return out


def _effective(doc, sub):
    """A property's schema with the block its ``$ref`` names merged in."""
    if "$ref" not in sub:
        return sub
    target = doc
    for part in sub["$ref"].lstrip("#/").split("/"):
        target = target[part]
    return _merge(doc, target, {k: v for k, v in sub.items() if k != "$ref"})


def test_every_schema_key_is_documented(schema):
    doc = yaml.safe_load(schema.read_text())

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            sub = _effective(doc, sub)
            assert sub.get("description"), f"config key {path + key} has no description"
            assert "default" in sub or key in node.get("required", []), \
                f"config key {path + key} has no default"
            walk(sub, f"{path}{key}.")
    walk(doc, "")
    walk(doc["$defs"]["experiment"], "experiments.<name>.")


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"inputs": {"demo": {"n_subject": 3}}},
         "config key 'inputs.demo': unknown key 'n_subject' (allowed: "),
        ({"inputs": {"demo": {"n_subjects": 0}}},
         "config key 'inputs.demo.n_subjects': value 0 is out of range (must be >= 1)"),
        ({"inputs": {"source": "xnat"}},
         "config key 'inputs.source': value 'xnat' is not allowed (allowed: 'demo', 'bids', 'dicom')"),
        ({"seed": "abc"}, "config key 'seed': value 'abc' has the wrong type (expected integer)"),
        ({"bogus": 1}, "config key '<top level>': unknown key 'bogus'"),
        ({"inputs": {"required_modalities": ["T1w", "ct"]}},
         "config key 'inputs.required_modalities.1': value 'ct' is not allowed"),
    ],
)
def test_bad_config_gives_one_line(repo, schema, override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(repo / "config" / "config.yaml", override, schema=schema)
    msg = str(err.value)
    assert expected in msg
    assert "\n" not in msg


def test_validate_in_place(schema):
    cfg = {}
    validate_config(cfg, schema)
    assert cfg["output_dir"] == "results"


def test_snakemake_stops_on_bad_config(repo, tmp_path):
    """The workflow refuses a bad key before building its DAG, with the one-line message."""
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--directory", str(repo), "--snakefile",
         str(repo / "Snakefile"), "--config", "output_dir=" + str(tmp_path), "colour=blue"],
        capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "invalid configuration: config key '<top level>': unknown key 'colour'" in out


def test_alternation_matches_exactly_the_labels():
    """The subject wildcard constraint: a compact regex with the same language as "|".join."""
    import random
    import re

    from spectsynth.config import alternation

    rng = random.Random(0)
    assert alternation([f"{i:02d}" for i in range(1, 13)]) == "(?:0[1-9]|1[0-2])"
    pool = [f"{i:04d}" for i in range(2000)] + ["ab", "abc", "a-b", "x.y", "Pat01", "01", "1"]
    for _ in range(30):
        words = rng.sample(pool, rng.randint(1, 300))
        fast, flat = re.compile(alternation(words)), re.compile("|".join(map(re.escape, words)))
        for probe in rng.sample(pool, 200) + ["", "0", "abcd", "x-y", "0000x"]:
            assert bool(fast.fullmatch(probe)) == bool(flat.fullmatch(probe)), (words[:5], probe)


@pytest.mark.parametrize(
    "entry, change, expected",
    [
        ("s1_fastgan", {"ngf": 16},
         "config key 'experiments.s1_fastgan.ngf': 'ngf' is a setting of model pix2pix only and this "
         "entry's model is 'fastgan'; remove it from this entry (value 16)"),
        ("s1_fastgan", {"lambda_l1": 10.0}, "'lambda_l1' is a setting of model pix2pix only"),
        ("s2_pix2pix", {"ema_decay": 0.99},
         "config key 'experiments.s2_pix2pix.ema_decay': 'ema_decay' is a setting of model fastgan only "
         "and this entry's model is 'pix2pix'"),
        ("s3_pix2pix", {"base_channels": 8}, "'base_channels' is a setting of model vae, cvae or fastgan only"),
        ("s0_clinical", {"ngf": 8}, "this entry's model is 'vae'"),
        ("s0_restoration", {"gan_eval_samples": 8}, "'gan_eval_samples' is a setting of model fastgan only"),
        ("s3_pix2pix", {"variants": ["A"]},
         "'variants' is a setting of study S1 only and this entry's study is 'S3'"),
        ("s1_fastgan", {"losses": ["l1"]}, "'losses' is a setting of study S2 only and this entry's study is 'S1'"),
        # a wrong model is reported as such, before the settings that no longer fit it
        ("s1_fastgan", {"model": "pix2pix"},
         "config key 'experiments.s1_fastgan.model': value 'pix2pix' is not allowed "
         "(allowed for study S1: 'fastgan')"),
        ("s0_clinical", {"model": "fastgan"}, "(allowed for study S0: 'vae', 'cvae')"),
    ],
)
def test_settings_of_another_family_or_study_are_errors(repo, schema, entry, change, expected):
    with pytest.raises(ConfigError) as err:
        load_config(repo / "config" / "config.yaml", {"experiments": {entry: change}}, schema=schema)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_experiment_key_lists_only_the_entrys_own_settings(repo, schema):
    with pytest.raises(ConfigError) as err:
        load_config(repo / "config" / "config.yaml", {"experiments": {"s1_fastgan": {"ema": 0.9}}},
                    schema=schema)
    msg = str(err.value)
    assert msg.startswith("config key 'experiments.s1_fastgan': unknown key 'ema' (allowed: ")
    assert "ema_decay" in msg and "variants" in msg
    assert "ngf" not in msg and "kl_warmup_epochs" not in msg and "inputs" not in msg


def test_a_null_setting_of_another_family_is_unset(repo, schema):
    """Null means "not set" (the resolved config lists every key of an entry, null if unset)."""
    cfg = load_config(repo / "config" / "config.yaml", {"experiments": {"s1_fastgan": {"ngf": None}}},
                      schema=schema)
    assert cfg["experiments"]["s1_fastgan"]["ngf"] is None


def test_defaults_are_filled_through_ref():
    """A property that is only a $ref takes the referenced block's default; a default beside the
    $ref wins; `properties` beside the $ref give the block's keys defaults for that site."""
    doc = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/block"},
            "b": {"$ref": "#/$defs/block", "default": {"x": 5}},
            "c": {"$ref": "#/$defs/block", "properties": {"y": {"default": "site"}}},
            "d": {"$ref": "#/$defs/alias"},
        },
        "$defs": {
            "block": {"type": "object", "default": {},
                      "properties": {"x": {"type": "integer", "default": 1}, "y": {"type": "string"}}},
            "alias": {"$ref": "#/$defs/block"},
        },
    }
    cfg = validate_config({}, doc)
    assert cfg == {"a": {"x": 1}, "b": {"x": 5}, "c": {"x": 1, "y": "site"}, "d": {"x": 1}}


def test_shared_split_block_takes_each_datasets_defaults(repo, schema):
    cfg = load_config(repo / "config" / "config.yaml",
                      {"datasets": {"s0": {"split": {"method": "counts"}}}}, schema=schema)
    s0, s2 = cfg["datasets"]["s0"]["split"], cfg["datasets"]["s2"]["split"]
    assert s0["method"] == "counts" and s0["val_within_train"] is True
    assert s0["fractions"] == {"train": 0.8, "val": 0.0, "test": 0.2}
    assert s2["val_within_train"] is False and s2["fractions"] == {"train": 0.625, "val": 0.125, "test": 0.25}
    assert s2["lists"] == {"train": [], "val": [], "test": []}


def test_schema_defaults_of_a_block(schema):
    from spectsynth.config import schema_defaults

    assert schema_defaults(schema, "$defs/paired_augment") == {"shift_px": 0, "flip": False}
    assert schema_defaults(schema, "datasets.s3.split")["fractions"] == {"train": 0.6, "val": 0.15, "test": 0.25}
    entry = schema_defaults(schema, "$defs/experiment", {"study": "S1", "model": "fastgan"})
    assert entry["preset"] == "study" and entry["ema_decay"] is None
    with pytest.raises(ConfigError, match="'ngf' is a setting of model pix2pix only"):
        schema_defaults(schema, "$defs/experiment", {"study": "S1", "model": "fastgan", "ngf": 3})
    with pytest.raises(ConfigError, match="has no default"):
        schema_defaults(schema, "datasets.s9")
