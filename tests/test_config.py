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
