"""Configuration: JSON-schema validation with one-line errors and schema defaults.

``validate_config`` is called by the workflow before the DAG is built.  It fills in the
defaults written in the schema and stops at the first problem with one line that names
the key, the value and what is allowed, e.g.::

    config key 'inputs.demo.n_subjects': value 0 is not allowed: must be >= 1
    config key 'inputs.demo': unknown key 'n_subject' (allowed: n_subjects, seed, ...)
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import Draft202012Validator, validators

from .errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


def _extend_with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, subschema in properties.items():
                if "default" in subschema and prop not in instance:
                    instance[prop] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_DefaultingValidator = _extend_with_defaults(Draft202012Validator)


def load_schema(path: str | Path | None = None) -> dict:
    with open(path or SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _key(path) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "<top level>"


def describe_error(err: jsonschema.ValidationError) -> str:
    """One line: the key, the value and what is allowed."""
    key = _key(err.absolute_path)
    v = err.validator
    if v == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        pattern = err.schema.get("patternProperties")
        allowed_txt = ", ".join(allowed) if allowed else "none"
        if pattern:
            allowed_txt += f"; or keys matching {', '.join(pattern)}"
        return (f"config key '{key}': unknown key{'s' if len(extra) > 1 else ''} "
                f"{', '.join(repr(e) for e in extra)} (allowed: {allowed_txt})")
    value = repr(err.instance)
    if len(value) > 80:
        value = value[:77] + "..."
    if v == "enum":
        allowed = ", ".join(repr(x) for x in err.validator_value)
        return f"config key '{key}': value {value} is not allowed (allowed: {allowed})"
    if v == "type":
        return f"config key '{key}': value {value} has the wrong type (expected {err.validator_value})"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[v]
        return f"config key '{key}': value {value} is out of range (must be {op} {err.validator_value})"
    if v == "required":
        return f"config key '{key}': {err.message}"
    return f"config key '{key}': value {value} is not allowed: {err.message}"


def iter_errors(config: dict, schema: dict) -> Iterator[jsonschema.ValidationError]:
    return _DefaultingValidator(schema).iter_errors(config)


def validate_config(config: dict, schema: dict | str | Path | None = None) -> dict:
    """Validate ``config`` in place (filling schema defaults) and return it.

    Raises :class:`ConfigError` with a one-line message on the first (deepest) problem.
    """
    if not isinstance(schema, dict):
        schema = load_schema(schema)
    errors = sorted(iter_errors(config, schema), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        msg = describe_error(errors[0])
        if len(errors) > 1:
            msg += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise ConfigError(msg)
    return config


def load_config(path: str | Path, overrides: dict | None = None,
                schema: dict | str | Path | None = None) -> dict:
    """Read a YAML config, apply nested ``overrides``, validate and fill defaults."""
    with open(path) as fh:
        cfg: dict[str, Any] = yaml.safe_load(fh) or {}
    if overrides:
        cfg = deep_update(cfg, overrides)
    return validate_config(cfg, schema)


def deep_update(base: dict, new: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def alternation(words: Iterable[str]) -> str:
    """A regex that matches exactly `words`, written as a trie (``0[1-9]|1[0-2]`` for 01..12).

    Same strings as ``"|".join(words)``, but short and matched in one step per character:
    Snakemake copies the `subject` constraint into every output pattern, scans those patterns
    each time it applies wildcards and matches every file of the DAG against them, so a flat
    alternation of 1000 labels made the dry run several seconds slower.
    """
    trie = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def charset(chars):
        """Character class of sorted `chars` (runs of consecutive code points as ranges)."""
        if len(chars) == 1:
            return re.escape(chars[0])
        runs = [[chars[0], chars[0]]]
        for char in chars[1:]:
            if ord(char) == ord(runs[-1][1]) + 1:
                runs[-1][1] = char
            else:
                runs.append([char, char])
        parts = []
        for a, b in runs:
            if a == b:
                parts.append(re.escape(a))
            else:  # "ab", or "a-c" for three and more
                dash = "-" if ord(b) - ord(a) > 1 else ""
                parts.append(re.escape(a) + dash + re.escape(b))
        return "[" + "".join(parts) + "]"

    def regex(node):
        tails = {}  # branches that continue alike share one character class
        for char, child in sorted(node.items()):
            if char:
                tails.setdefault(regex(child), []).append(char)
        alts = [charset(chars) + tail for tail, chars in tails.items()]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return regex(trie)
