"""Configuration: JSON-schema validation with one-line errors and schema defaults.

``validate_config`` is called by the workflow before the DAG is built.  It fills in the
defaults written in the schema and stops at the first problem with one line that names
the key, the value and what is allowed, e.g.::

    config key 'inputs.demo.n_subjects': value 0 is not allowed: must be >= 1
    config key 'inputs.demo': unknown key 'n_subject' (allowed: n_subjects, seed, ...)
    config key 'experiments.s1_fastgan.ngf': 'ngf' is a setting of model pix2pix only and this
    entry's model is 'fastgan'; remove it from this entry (value 16)

Blocks used more than once are written once under the schema's ``$defs``; defaults are filled
through ``$ref`` too. :func:`schema_defaults` returns what a block fills in.

Options are declared once, next to the code that reads them, in option fragments
(``options.yaml`` beside a package: ``spectsynth/simulate/options.yaml``,
``spectsynth/studies/s0/options.yaml``, ``spectsynth/models/pix2pix/options.yaml``, ...; the core
blocks in ``spectsynth/options.yaml``). A fragment maps config key paths (``simulate``,
``datasets.s0``, ``evaluate.clinical``, ``experiments.*.ngf``) to their schema blocks; the package
reads its defaults from it (:func:`fragment_defaults`) and :mod:`spectsynth.schema` assembles the
schema from the fragments (``config/schema.yaml`` is that schema, generated). A value that code
owns is named, not copied: ``{x-from: "module:NAME"}`` stands for that attribute's value, or
what it returns when it is a function (:func:`resolve_refs`; a tuple becomes a list, a mapping
under ``enum`` its keys).
"""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import Draft202012Validator, validators

from .errors import ConfigError
from .mapping import merge  # noqa: F401  (the config merges with it; re-exported)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
# The core fragment: top-level blocks that no package owns, and the shared ``$defs``.
CORE_FRAGMENT = Path(__file__).resolve().with_name("options.yaml")
FRAGMENT_NAME = "options.yaml"
# A fragment's key for an option of every experiment entry: ``experiments.*.<option>``.
EXPERIMENT_PREFIX = "experiments.*."


def _pointer(root: dict, ref: str) -> Any:
    """The part of ``root`` that the local reference ``ref`` (``#/$defs/split``) names."""
    if not ref.startswith("#"):
        raise ConfigError(f"config schema: only local references ('#/...') are supported, not {ref!r}")
    node: Any = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _default(root: dict, subschema: Any) -> tuple[bool, Any]:
    """(True, default) when ``subschema`` or the block its ``$ref`` chain names has a default.

    A default written beside a ``$ref`` wins over the referenced block's own (the referencing
    site can set its own default for a shared block)."""
    seen = set()
    while isinstance(subschema, dict):
        if "default" in subschema:
            return True, subschema["default"]
        ref = subschema.get("$ref")
        if ref is None or ref in seen:
            break
        seen.add(ref)
        subschema = _pointer(root, ref)
    return False, None


def _defaulting_validator(schema: dict, root: dict | None = None) -> jsonschema.protocols.Validator:
    """A draft 2020-12 validator of ``schema`` that fills in absent keys' defaults as it validates.

    Defaults are filled by ``properties`` wherever it is applied: in the schema itself, through
    ``$ref``, ``allOf`` and ``then``. A property whose schema is only a ``$ref`` takes the
    default of the referenced block."""
    validate_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for prop, prop_schema in properties.items():
                if prop not in instance:
                    found, value = _default(root or schema, prop_schema)
                    if found:
                        instance[prop] = copy.deepcopy(value)
        yield from validate_properties(validator, properties, instance, subschema)

    cls = validators.extend(Draft202012Validator, {"properties": set_defaults})
    return cls(schema)


def schema_defaults(schema: dict | str | Path | None, where: str, instance: dict | None = None) -> Any:
    """The defaults that a block of ``schema`` fills in, as validation would.

    ``where`` is a config key path (``"datasets.s1"``, ``"simulate"``; the value that key takes
    in a config that sets nothing) or a reusable block (``"$defs/split"``), then filled into
    ``instance`` (default: the block's own default or ``{}``). A block whose keys need values
    (``$defs/experiment`` needs ``study`` and ``model``) takes them in ``instance``. Raises
    :class:`ConfigError` when ``instance`` does not validate against the block."""
    if not isinstance(schema, dict):
        schema = load_schema(schema)
    if where.lstrip("#/").startswith("$defs/"):
        block = _pointer(schema, "#/" + where.lstrip("#/"))
        found, start = _default(schema, block)
        target = copy.deepcopy(instance if instance is not None else (start if found else {}))
        errors = list(_defaulting_validator({**block, "$defs": schema.get("$defs", {})}, schema)
                      .iter_errors(target))
        if errors:
            raise ConfigError(f"{where}: {describe_error(errors[0], target)}")
        return target
    cfg = validate_config({}, schema)
    for part in where.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            raise ConfigError(f"config key {where!r} has no default (no {part!r} in the filled config)")
        cfg = cfg[part]
    if instance is not None:
        raise ConfigError("schema_defaults: an instance is only filled into a $defs block")
    return cfg


def _json_like(value: Any, as_enum: bool = False) -> Any:
    if isinstance(value, Mapping):
        return list(value) if as_enum else {k: _json_like(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_json_like(v) for v in value]
    return copy.deepcopy(value)


def resolve_refs(node: Any, parent_key: str | None = None) -> Any:
    """``node`` with every ``{x-from: "module:NAME"}`` replaced by that attribute's value, or what
    it returns when it is a function (imported when asked for, so a module may read a fragment
    that names its own constants)."""
    if isinstance(node, dict):
        if set(node) == {"x-from"}:
            module, _, name = str(node["x-from"]).partition(":")
            try:
                value = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"config schema: x-from {node['x-from']!r} names nothing ({exc})") from None
            if callable(value):
                value = value()
            return _json_like(value, as_enum=parent_key == "enum")
        return {k: resolve_refs(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_refs(v, parent_key) for v in node]
    return node


@cache
def _read_fragment(path: str) -> dict:
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"option fragment {path}: expected a mapping of config keys to schema blocks")
    return data


def read_fragment(path: str | Path) -> dict:
    """The option fragment at ``path`` (config key path -> schema block), ``x-from`` resolved."""
    return resolve_refs(copy.deepcopy(_read_fragment(str(path))))


def core_defs() -> dict:
    """The shared ``$defs`` blocks of the core fragment."""
    return read_fragment(CORE_FRAGMENT).get("$defs", {})


def block_defaults(block: dict, instance: Any = None) -> Any:
    """What ``block`` (a schema block of a fragment; ``$ref`` into the core ``$defs``) fills in,
    as validation would: its own default (or ``instance``, or ``{}``) with its keys' defaults."""
    root = {**block, "$defs": core_defs()}
    found, start = _default(root, block)
    if not found and "properties" not in block and "$ref" not in block and instance is None:
        raise ConfigError(f"option block {block.get('description', block)!r} has no default")
    target = copy.deepcopy(instance if instance is not None else (start if found else {}))
    if not isinstance(target, dict):
        return target
    errors = list(_defaulting_validator(root).iter_errors(target))
    if errors:
        raise ConfigError(describe_error(errors[0], target))
    return target


def fragment_defaults(path: str | Path, key: str | None = None) -> Any:
    """The defaults a fragment declares: those of the block at config key ``key``, or (``key``
    None) ``{option: default}`` of its ``experiments.*.<option>`` keys (a model family's)."""
    fragment = read_fragment(path)
    if key is not None:
        return block_defaults(declared(path, key))
    return {k.split(".", 2)[2]: block_defaults(b) for k, b in fragment.items() if k.startswith(EXPERIMENT_PREFIX)}


def check_block(path: str | Path, value: Any, key: str) -> None:
    """Check ``value`` against the block at config key ``key`` of the fragment at ``path`` (its
    types, bounds and choices); raises :class:`ConfigError` with one line naming the key, as the
    workflow's validation would (for code that is handed a block without the whole config)."""
    block: Any = declared(path, key)
    instance: Any = value
    for part in reversed(key.split(".")):
        block = {"type": "object", "properties": {part: block}}
        instance = {part: instance}
    errors = sorted(Draft202012Validator({**block, "$defs": core_defs()}).iter_errors(instance),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise ConfigError(describe_error(errors[0], instance))


def declared(path: str | Path, key: str) -> dict:
    """The schema block that declares config key ``key`` in the fragment at ``path``:
    ``declared(CORE_FRAGMENT, "evaluate.corrections")``, ``declared(<preprocess options.yaml>,
    "preprocess.registration.backend")``, or a shared block of the core (``"$defs/normalise"``).
    For code that names the choices an option offers (``tuple(block["enum"])``) instead of
    writing them a second time."""
    fragment = read_fragment(path)
    if key.startswith("$defs/"):  # a shared block, or a key inside one ("$defs/experiment/seed")
        name, *parts = key.split("/")[1:]
        node: Any = fragment["$defs"][name]
    else:
        parts = key.split(".")
        node = {"properties": fragment.get("properties", {})}
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in fragment:
                node, parts = fragment[".".join(parts[:i])], parts[i:]
                break
    for part in parts:
        try:
            node = node["properties"][part]
        except (KeyError, TypeError):
            raise ConfigError(f"option fragment {path}: declares no config key {key!r}") from None
    return node


def core_defaults(where: str) -> Any:
    """The defaults of a core block: a top-level key (``"training"``), a shared block
    (``"$defs/split"``) or a key every experiment entry has (``"$defs/experiment/seed"``)."""
    return block_defaults(declared(CORE_FRAGMENT, where))


def load_schema(path: str | Path | None = None) -> dict:
    with open(path or SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _key(path) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "<top level>"


def _either(values: Iterable) -> str:
    """'a', 'a or b', 'a, b or c'."""
    values = [str(x) for x in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def _foreign_keys(schema: dict, entry: Any) -> set[str]:
    """Keys that ``schema``'s ``x-only-for`` branches (``allOf`` / ``then`` / ``patternProperties``)
    reserve for another model family or study than ``entry``'s."""
    out: set[str] = set()
    if not isinstance(entry, dict):
        return out
    for branch in schema.get("allOf", []):
        for pattern, sub in (branch.get("then", {}).get("patternProperties") or {}).items():
            owner = sub.get("x-only-for") if isinstance(sub, dict) else None
            if owner and any(entry.get(f) not in values for f, values in owner.items()):
                out |= {k for k in schema.get("properties", {}) if re.search(pattern, k)}
    return out


def _owner_text(owner: dict, entry: Any) -> str:
    """'model pix2pix' / 'study S2' and what ``entry`` (the enclosing object) has instead."""
    parts = []
    for field, values in owner.items():
        own = entry.get(field) if isinstance(entry, dict) else None
        have = f" and this entry's {field} is {own!r}" if own is not None else ""
        parts.append(f"{field} {_either(values)} only{have}")
    return "; ".join(parts)


def describe_error(err: jsonschema.ValidationError, config: Any = None) -> str:
    """One line: the key, the value and what is allowed.

    ``config`` (the validated instance) lets a setting that belongs to another model family or
    study name the entry's own model or study."""
    key = _key(err.absolute_path)
    v = err.validator
    value = repr(err.instance)
    if len(value) > 80:
        value = value[:77] + "..."
    owner = err.schema.get("x-only-for") if isinstance(err.schema, dict) else None
    if owner:
        entry = config
        for part in list(err.absolute_path)[:-1]:
            entry = entry.get(part) if isinstance(entry, dict) else None
        name = err.absolute_path[-1] if err.absolute_path else key
        return (f"config key '{key}': {name!r} is a setting of {_owner_text(owner, entry)}; "
                f"remove it from this entry (value {value})")
    if v == "additionalProperties":
        allowed = sorted(set(err.schema.get("properties", {})) - _foreign_keys(err.schema, err.instance))
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        pattern = err.schema.get("patternProperties")
        allowed_txt = ", ".join(allowed) if allowed else "none"
        if pattern:
            allowed_txt += f"; or keys matching {', '.join(pattern)}"
        return (f"config key '{key}': unknown key{'s' if len(extra) > 1 else ''} "
                f"{', '.join(repr(e) for e in extra)} (allowed: {allowed_txt})")
    if v == "enum":
        allowed = ", ".join(repr(x) for x in err.validator_value)
        scope = err.schema.get("x-allowed-for") if isinstance(err.schema, dict) else None
        scope = f" for {scope}" if scope else ""
        return f"config key '{key}': value {value} is not allowed (allowed{scope}: {allowed})"
    if v == "type":
        return f"config key '{key}': value {value} has the wrong type (expected {err.validator_value})"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[v]
        return f"config key '{key}': value {value} is out of range (must be {op} {err.validator_value})"
    if v == "required":
        return f"config key '{key}': {err.message}"
    return f"config key '{key}': value {value} is not allowed: {err.message}"


def iter_errors(config: dict, schema: dict) -> Iterator[jsonschema.ValidationError]:
    return _defaulting_validator(schema).iter_errors(config)


def validate_config(config: dict, schema: dict | str | Path | None = None) -> dict:
    """Validate ``config`` in place (filling schema defaults) and return it.

    Raises :class:`ConfigError` with a one-line message on the first (deepest) problem.
    """
    if not isinstance(schema, dict):
        schema = load_schema(schema)
    # A setting of another family is reported after the other problems: a wrong `model` is the
    # cause, the settings that no longer fit it are its consequence.
    errors = sorted(iter_errors(config, schema),
                    key=lambda e: (isinstance(e.schema, dict) and "x-only-for" in e.schema,
                                   [str(p) for p in e.absolute_path]))
    if errors:
        msg = describe_error(errors[0], config)
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
        cfg = merge(cfg, overrides)
    return validate_config(cfg, schema)


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
