"""Defaults and checks of the ``simulate:`` config section.

The options are declared once, in ``options.yaml`` beside this package (the ``simulate`` block
of the configuration schema, which spectsynth.schema assembles from it): :data:`DEFAULTS` is what
that block fills in, so that the package can be used without reading the schema. For users who
call the package directly, :func:`resolve` fills in the defaults, checks the section against
that declaration (and what one key cannot say) and returns a plain dict.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..config import check_block, fragment_defaults
from ..errors import ConfigError
from .design import check_dat_parameters  # noqa: F401  (re-exported)
from .kinetics import SPECT_TRACER as KINETICS_SPECT_TRACER

OPTIONS = Path(__file__).with_name("options.yaml")
DEFAULTS: dict[str, Any] = fragment_defaults(OPTIONS, "simulate")


def _merge(base: dict, override: Mapping, path: str) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}.{key}"
        if key not in base:
            raise ConfigError(f"unknown config key {where}; known keys of {path}: {', '.join(sorted(base))}")
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
            out[key] = _merge(base[key], value, where)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _unit_list(values: Any, where: str) -> None:
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"{where} must be a non-empty list of numbers in [0, 1]")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise ConfigError(f"{where} holds {v!r}; every value must lie in [0, 1]")


def _range2(values: Any, lo: float, hi: float, where: str) -> None:
    if (not isinstance(values, (list, tuple)) or len(values) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
        raise ConfigError(f"{where} must be a [min, max] pair of numbers")
    if not lo <= values[0] <= values[1] <= hi:
        raise ConfigError(f"{where} = {list(values)} must satisfy {lo} <= min <= max <= {hi}")


@lru_cache(maxsize=1)
def collimator_table() -> dict[str, str]:
    """Collimator codes PyTomography knows (its ``collim.col``), without importing it."""
    spec = importlib.util.find_spec("pytomography")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("simulate.physics is 'projection' but PyTomography is not installed; install it "
                          "with `pip install pytomography==3.4.0 torch==<your torch version>` or choose "
                          "simulate.physics: image")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "collim.col"
    table: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("*"):
            parts = line[1:].split()
            if parts:
                table.setdefault(parts[0], " ".join(parts[13:]).strip())
    return table


def check_collimator(code: str) -> None:
    """Refuse a collimator code PyTomography does not know exactly (it would match substrings)."""
    table = collimator_table()
    if code not in table:
        lehr = sorted(c for c in table if c.endswith("LEHR"))
        raise ConfigError(f"unknown collimator code {code!r} in simulate.projection.collimator; use a code of "
                          f"PyTomography's collimator table, e.g. {', '.join(lehr[:12])}")
    # PyTomography takes the first line *containing* the code: make sure that is this code.
    spec = importlib.util.find_spec("pytomography")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "collim.col"
    for line in path.read_text(errors="replace").splitlines():
        if code in line:
            first = line[1:].split()[0] if line.startswith("*") else None
            if first != code:
                raise ConfigError(f"collimator code {code!r} is ambiguous in PyTomography's table (it also "
                                  f"matches {line.strip()[:40]!r}); choose another code")
            break


def resolve(section: Mapping | None) -> dict:
    """Defaults merged with ``section`` (the ``simulate:`` config), checked; raises ConfigError.

    Types, bounds and choices are checked against the options' own declaration (``options.yaml``,
    the schema block the workflow validates too); what follows checks what one key's declaration
    cannot: how keys relate (views and subsets, [min, max] pairs, the focus's lobes and weights,
    the cameras) and whether a collimator code is known."""
    cfg = _merge(DEFAULTS, section or {}, "simulate")
    check_block(OPTIONS, cfg, "simulate")
    p = cfg["projection"]
    if p["views"] % p["subsets"]:
        raise ConfigError(f"simulate.projection.views ({p['views']}) must be a multiple of subsets ({p['subsets']})")
    if cfg["physics"] == "projection":
        check_collimator(p["collimator"])
    d = cfg["dat"]
    for key, label in (("pbr", "PBR, putaminal binding retained"), ("cbr", "CBR, caudate binding retained"),
                       ("slr", "SLR, side ratio")):
        _unit_list(d["grid"][key], f"simulate.dat.grid.{key} ({label})")
    pf = cfg["perfusion"]
    _range2(pf["defect_depth"], 0.0, 1.0, "simulate.perfusion.defect_depth")
    _range2(pf["defect_radius_mm"], 5.0, 300.0, "simulate.perfusion.defect_radius_mm")
    kin = cfg["cbf"]["kinetics"]
    if kin["enabled"] and "pet" in cfg["tracers"] and pf["tracer"] != KINETICS_SPECT_TRACER:
        # the SPECT-CBF's uptake and its ARG quantification are 123I-IMP's (spectsynth.simulate.kinetics)
        raise ConfigError(
            f"simulate.cbf.kinetics models the SPECT-CBF as {KINETICS_SPECT_TRACER} (one-tissue uptake, ARG "
            f"quantification), but S3's SPECT-CBF takes simulate.perfusion.tracer, which is {pf['tracer']!r}. "
            f"Set simulate.perfusion.tracer: {KINETICS_SPECT_TRACER}, or simulate.cbf.kinetics.enabled: false "
            "(both images in counts, no absolute flow)")
    for k in ("gm_flow", "vd_true"):
        v = kin[k]
        if not (0.0 < v[0] <= 200.0 and 0.0 <= v[1] <= v[0]):
            raise ConfigError(f"simulate.cbf.kinetics.{k} = {v!r} must be [mean, sd] with 0 < mean <= 200 "
                              "and 0 <= sd <= mean")
    from .frames import check as check_frames

    check_frames(cfg["frames"])
    wp = "simulate.physiology"
    fc = cfg["physiology"]["focus"]
    if sum(float(fc["lobe_weights"].get(lb, 0)) for lb in fc["lobes"]) <= 0:
        raise ConfigError(f"{wp}.focus.lobe_weights {fc['lobe_weights']!r} must give a positive weight to at "
                          "least one lobe in focus.lobes")
    _range2(fc["radius_mm"], 2.0, 100.0, f"{wp}.focus.radius_mm")
    _range2(fc["metabolism_extent_ratio"], 0.2, 5.0, f"{wp}.focus.metabolism_extent_ratio")
    _range2(fc["depth_perfusion"], 0.0, 1.0, f"{wp}.focus.depth_perfusion")
    _range2(fc["depth_metabolism"], 0.0, 1.0, f"{wp}.focus.depth_metabolism")
    return cfg
