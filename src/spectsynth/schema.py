"""The configuration schema, assembled from the option fragments and the registries.

Every option is declared once, beside the code that reads it (:mod:`spectsynth.config` describes
the fragments). :func:`assemble` builds the schema the workflow validates with:

1. the core fragment (``spectsynth/options.yaml``): top-level blocks no package owns, the shared
   ``$defs`` and the keys every experiment entry has; an ``{x-options: <package>}`` block is
   replaced by that package's fragment (``inputs``, ``simulate``, ``preprocess``);
2. each registered study's fragment (:attr:`spectsynth.studies.base.Study.options`): its
   ``datasets.<key>`` block, its ``evaluate.<name>`` blocks and the ``experiments.*.<key>`` keys
   only its entries read;
3. each registered model family's fragment (``options.yaml`` of its package): its
   ``experiments.*.<key>`` settings. In the schema they take ``null`` ("the family's default",
   named in the description), since one key (``base_channels``) can have another default in
   another family; the family reads its defaults from its fragment;
4. what the registries know: the enums of ``studies``, ``study``, ``model`` and
   ``selection_metric``, which families may serve which study, and the rules that keep a
   family's or a study's keys to its own entries (``x-only-for``, named in the error message).

``config/schema.yaml`` is :func:`render` of that schema, committed so it can be read without
running anything; ``spectsynth schema --write`` regenerates it and
``tests/test_schema_assembly.py`` checks that the committed file is the generated one.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .config import CORE_FRAGMENT, EXPERIMENT_PREFIX, FRAGMENT_NAME, SCHEMA_PATH, read_fragment
from .errors import ConfigError

HEADER = """\
# GENERATED FILE: do not edit. The configuration schema, assembled by spectsynth.schema from the
# option fragments declared beside the code (src/spectsynth/options.yaml for the core blocks,
# src/spectsynth/<package>/options.yaml, src/spectsynth/studies/<key>/options.yaml,
# src/spectsynth/models/<family>/options.yaml) and the study and model registries.
# Edit a fragment, then run `spectsynth schema --write`.
"""

# Keys of a family's option whose values must agree between families that declare it.
_SHAPE_KEYS = ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "items",
               "minItems", "maxItems", "uniqueItems")


def package_fragment(package: str) -> Path:
    """The option fragment beside ``package`` (``spectsynth.simulate`` -> .../simulate/options.yaml)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"config schema: {package!r} is not a package with an {FRAGMENT_NAME}")
    return Path(list(spec.submodule_search_locations)[0]) / FRAGMENT_NAME


def _either(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _show(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def _nullable(block: dict) -> dict:
    """``block`` as an experiment-entry key: null allowed, default null."""
    out = copy.deepcopy(block)
    kinds = out.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        out["type"] = kinds + (["null"] if "null" not in kinds else [])
    if "enum" in out and None not in out["enum"]:
        out["enum"] = list(out["enum"]) + [None]
    out["default"] = None
    return out


def _place(schema: dict, path: str, block: dict, where: Path) -> None:
    """Put ``block`` at config key ``path`` (``evaluate.clinical``) of ``schema``."""
    node = schema
    parts = path.split(".")
    for part in parts[:-1]:
        props = node.get("properties")
        if not isinstance(props, dict) or part not in props:
            raise ConfigError(f"option fragment {where}: config key {path!r}: no block {part!r} to put it in. "
                              "A fragment adds keys to existing blocks; declare the block in the core "
                              "fragment (spectsynth/options.yaml) first")
        node = props[part]
    props = node.setdefault("properties", {})
    if props is None:
        props = node["properties"] = {}
    old = props.get(parts[-1])
    if old is not None and not (isinstance(old, dict) and "x-options" in old):
        raise ConfigError(f"option fragment {where}: config key {path!r} is declared twice. "
                          "Every option is declared in one fragment only")
    props[parts[-1]] = block


def _fill_sections(schema: dict) -> None:
    """Replace each ``{x-options: <package>}`` block by that package's fragment."""
    for name, block in list(schema["properties"].items()):
        if isinstance(block, dict) and set(block) == {"x-options"}:
            where = package_fragment(block["x-options"])
            fragment = read_fragment(where)
            if name not in fragment:
                raise ConfigError(f"option fragment {where}: declares no block {name!r}")
            for path, sub in fragment.items():
                if path == name:
                    schema["properties"][name] = sub
                else:
                    _place(schema, path, sub, where)


def _family_options(families: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """key -> {"families": [...], "blocks": [(families of one fragment, block)]} of every family option."""
    by_fragment: dict[Path, list[str]] = {}
    for name, family in families.items():
        by_fragment.setdefault(package_fragment(family.package), []).append(name)
    out: dict[str, dict[str, Any]] = {}
    for where, names in by_fragment.items():
        for path, block in read_fragment(where).items():
            if not path.startswith(EXPERIMENT_PREFIX):
                raise ConfigError(f"option fragment {where}: a model family declares experiments.*.<key> "
                                  f"options only, not {path!r}")
            key = path[len(EXPERIMENT_PREFIX):]
            entry = out.setdefault(key, {"families": [], "blocks": []})
            entry["families"] += names
            entry["blocks"].append((names, block, where))
    return out


def _merge_family_option(key: str, blocks: list) -> dict:
    """One schema block for a family option several fragments may declare (same shape required)."""
    _, first, first_where = blocks[0]
    shape = {k: first.get(k) for k in _SHAPE_KEYS}
    for _names, block, where in blocks[1:]:
        other = {k: block.get(k) for k in _SHAPE_KEYS}
        if other != shape:
            raise ConfigError(f"experiments.*.{key}: declared differently by {first_where} and {where} "
                              f"({shape} vs {other}). Families that share a key give it the same type and bounds")
    out = _nullable(first)
    parts = []
    for names, block, _ in blocks:
        desc = str(block.get("description", "")).strip().rstrip(".")
        parts.append(f"{', '.join(names)}: {desc} (default {_show(block.get('default'))}).")
    out["description"] = " ".join(parts)
    return out


def _only_for_branch(field: str, owners: list[str], keys: list[str]) -> dict:
    return {"if": {"required": [field], "properties": {field: {"not": {"enum": owners}}}},
            "then": {"patternProperties": {f"^({'|'.join(keys)})$": {"const": None, "x-only-for": {field: owners}}}}}


def assemble(studies: Mapping[str, Any] | None = None, families: Mapping[str, Any] | None = None) -> dict:
    """The configuration schema of the registered studies and model families (default: the
    registries of :mod:`spectsynth.studies` and :mod:`spectsynth.models`)."""
    if studies is None:
        from .studies import REGISTRY as studies
    if families is None:
        from .models import REGISTRY as families
    schema = read_fragment(CORE_FRAGMENT)
    _fill_sections(schema)
    entry = schema["$defs"]["experiment"]
    props = entry["properties"]

    study_keys: dict[str, list[str]] = {}
    for name, study in studies.items():
        where = study.options_path()
        if where is None:
            continue
        for path, block in read_fragment(where).items():
            if path.startswith(EXPERIMENT_PREFIX):
                key = path[len(EXPERIMENT_PREFIX):]
                if key in props:
                    raise ConfigError(f"option fragment {where}: experiments.*.{key} is declared twice")
                props[key] = block
                study_keys.setdefault(name, []).append(key)
            else:
                _place(schema, path, block, where)

    options = _family_options(families)
    for key, opt in options.items():
        if key in props:
            raise ConfigError(f"experiments.*.{key}: a model family's option has the name of a key every "
                              f"entry has or of a study's key")
        props[key] = _merge_family_option(key, opt["blocks"])

    names = list(studies)
    props["study"]["enum"] = names
    props["model"]["enum"] = list(families)
    metrics: list[Any] = []
    for family in families.values():
        metrics += [m for m in family.selection_metrics if m not in metrics]
    props["selection_metric"]["enum"] = metrics + [None]
    schema["properties"]["studies"]["items"]["enum"] = names

    branches: list[dict] = []
    served: dict[tuple[str, ...], list[str]] = {}
    for name, study in studies.items():
        served.setdefault(tuple(study.families), []).append(name)
    for fams, who in served.items():
        cond = {"const": who[0]} if len(who) == 1 else {"enum": who}
        label = f"{'study' if len(who) == 1 else 'studies'} {_either(who)}"
        branches.append({"if": {"required": ["study"], "properties": {"study": cond}},
                         "then": {"properties": {"model": {"enum": list(fams), "x-allowed-for": label}}}})
    groups: dict[tuple[str, ...], list[str]] = {}
    for key, opt in options.items():
        owners = tuple(f for f in families if f in opt["families"])
        if set(owners) != set(families):
            groups.setdefault(owners, []).append(key)
    branches += [_only_for_branch("model", list(o), keys) for o, keys in groups.items()]
    branches += [_only_for_branch("study", [name], keys) for name, keys in study_keys.items()]
    entry["allOf"] = branches
    return schema


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of scalars and small mappings of scalars, which read better inline;
    no anchors (each block is written out where it applies)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flat = all(not isinstance(x, (dict, list)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    flat = 0 < len(data) <= 3 and all(not isinstance(v, (dict, list)) and len(str(v)) < 40 for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flat)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


def render(schema: dict) -> str:
    """The committed, human-readable form of ``schema``."""
    return HEADER + yaml.dump(schema, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def check(path: str | Path = SCHEMA_PATH) -> list[str]:
    """Problems of the committed schema at ``path`` (empty when it is the generated one)."""
    path = Path(path)
    if not path.is_file():
        return [f"{path} does not exist; run `spectsynth schema --write`"]
    if path.read_text() != render(assemble()):
        return [f"{path} is not the schema the option fragments give; run `spectsynth schema --write` "
                "(and edit the fragments, not the generated file)"]
    return []


def write(path: str | Path = SCHEMA_PATH) -> Path:
    from .io import write_text

    write_text(render(assemble()), Path(path))
    return Path(path)


def fragments(studies: Iterable[Any] | None = None) -> list[Path]:
    """Every option fragment the schema is assembled from."""
    if studies is None:
        from .studies import REGISTRY

        studies = REGISTRY.values()
    from .models import REGISTRY as families

    core = read_fragment(CORE_FRAGMENT)
    out = [CORE_FRAGMENT]
    out += [package_fragment(b["x-options"]) for b in core["properties"].values()
            if isinstance(b, dict) and set(b) == {"x-options"}]
    out += [p for p in (s.options_path() for s in studies) if p is not None]
    out += list(dict.fromkeys(package_fragment(f.package) for f in families.values()))
    return out
