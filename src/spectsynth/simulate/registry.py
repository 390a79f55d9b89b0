"""The tracers the simulator knows, in one place: one :class:`Tracer` entry per tracer.

Everything the simulation needs to know about a tracer is read from its entry: its name (as
the config, the truth tables, the sidecars and the random streams spell it), its BIDS ``trc-``
label, its modality and isotope (photon energy, the SPECT tail of ``simulate.spect.tail_fraction``),
which of the subject's physiology fields modulates its uptake, its uptake model, its default
share of scalp uptake (``simulate.physiology.extracerebral``) and the colour map of its montage
panels.  :func:`tracer` looks one up; :data:`TRACERS` holds them all in a fixed order.

Around the tracers: :data:`GROUPS` are the tracer groups that ``simulate.tracers`` lists (the
rules of the simulation stage), :data:`SCANS` the scanner-frame scans each group writes (with
the tracer each is imaged with, fixed or chosen in the config), and :data:`TRACER_SECTIONS` the
config sections that choose a tracer (``simulate.<section>.tracer``) with the tracers each may
name.

This module imports nothing heavy (the config module reads it); the uptake models are named
as ``"module:attribute"`` and imported on first use (:attr:`Tracer.uptake_model`).

Adding a tracer
    Add one :class:`Tracer` entry to ``_BUILTIN`` below and give it an uptake model.  A new
    perfusion agent (modality ``spect``, physiology ``perfusion``) can use
    :class:`~.tracers.PerfusionModel` (or a subclass of it) as its model and is then accepted by
    ``simulate.perfusion.tracer`` and ``simulate.interictal.tracer`` and imaged by every rule that
    images the configured perfusion tracer; a new isotope needs an :class:`Isotope` entry (and,
    for SPECT, a ``simulate.spect.tail_fraction`` default in the simulator's ``options.yaml``).
    The options that name tracers are read from this registry by the simulator's option
    fragment (``options.yaml``, through ``x-from``): the ``tracer`` enums of
    ``simulate.perfusion`` and ``simulate.interictal`` (:func:`perfusion_agents`), the groups of
    ``simulate.tracers`` (:func:`group_names`) and the keys of ``simulate.physiology.extracerebral``
    with the entry's default (:func:`extracerebral_options`); after adding an entry,
    ``spectsynth schema --write`` regenerates ``config/schema.yaml``.  A tracer
    imaged by a scan of its own (not a perfusion agent) also needs a :class:`Scan` and the code
    of the group that simulates it (:mod:`.core`).  Never rename an entry: the name seeds the
    tracer's random streams.  For a tracer that lives outside the package (a test, a notebook),
    :func:`registered` adds it for the duration of a ``with`` block.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import ConfigError


@dataclass(frozen=True)
class Isotope:
    """A radionuclide: its name (as ``simulate.spect.tail_fraction`` keys it) and photon energy."""

    name: str
    energy_keV: float
    description: str


ISOTOPES: Mapping[str, Isotope] = MappingProxyType({i.name: i for i in (
    Isotope("I-123", 159.0, "123I: 159 keV photons, and 529 keV ones that penetrate a low-energy collimator"),
    Isotope("Tc-99m", 140.0, "99mTc: 140 keV photons, scatter only"),
    Isotope("F-18", 511.0, "18F positron emitter (511 keV annihilation photons)"),
    Isotope("O-15", 511.0, "15O positron emitter (511 keV annihilation photons)"),
)})

MODALITIES = ("spect", "pet")
PHYSIOLOGY_KINDS = ("perfusion", "metabolism")


@dataclass(frozen=True)
class Tracer:
    """One tracer: what the simulator reads about it (see the module docstring).

    ``uptake`` is the tracer's uptake model, a callable or ``"module:attribute"`` (a module
    relative to :mod:`spectsynth.simulate` when it starts with a dot), with the call interface of
    the group that images the tracer: :class:`~.tracers.DatModel` (DaT),
    :class:`~.tracers.PerfusionModel` (perfusion agents and 15O-water) or
    :func:`~.tracers.fdg_activity` (FDG).  ``physiology`` is the kind of the subject's physiology
    that modulates its uptake (:data:`PHYSIOLOGY_KINDS`; ``None``: none, as DaT binding).
    ``extracerebral`` is the default of ``simulate.physiology.extracerebral.<name>`` (scalp uptake
    relative to white matter; ``None``: the tracer has no such key).  ``trc`` is the BIDS ``trc-``
    label of its files (the name when not given).
    """

    name: str
    modality: str
    isotope: str
    uptake: str | Callable
    description: str
    physiology: str | None = None
    extracerebral: float | None = None
    trc: str = ""
    colormap: str = "viridis"

    def __post_init__(self) -> None:
        if not self.trc:
            object.__setattr__(self, "trc", self.name)
        if self.modality not in MODALITIES:
            raise ConfigError(f"tracer {self.name}: modality {self.modality!r} is not one of {', '.join(MODALITIES)}")
        if self.isotope not in ISOTOPES:
            raise ConfigError(f"tracer {self.name}: unknown isotope {self.isotope!r}; known isotopes are "
                              f"{', '.join(ISOTOPES)} (add an Isotope to spectsynth.simulate.registry.ISOTOPES)")
        if self.physiology is not None and self.physiology not in PHYSIOLOGY_KINDS:
            raise ConfigError(f"tracer {self.name}: physiology {self.physiology!r} is not one of "
                              f"{', '.join(PHYSIOLOGY_KINDS)} (or None)")
        if not self.trc.isalnum():
            raise ConfigError(f"tracer {self.name}: the BIDS trc label {self.trc!r} must be alphanumeric")

    @property
    def energy_keV(self) -> float:
        """Photon energy of its isotope (keV)."""
        return ISOTOPES[self.isotope].energy_keV

    @property
    def uptake_model(self) -> Callable:
        """The uptake model (imported on first use when ``uptake`` names it)."""
        if callable(self.uptake):
            return self.uptake
        module, _, attr = self.uptake.partition(":")
        return getattr(importlib.import_module(module, __package__), attr)


# The tracers of the built-in studies, in this order (the defaults of
# simulate.physiology.extracerebral follow it).
_BUILTIN = (
    Tracer("DaT", "spect", "I-123", ".tracers:DatModel",
           "123I-ioflupane dopamine-transporter SPECT: striatal binding over non-specific tissue uptake (S0)",
           colormap="hot"),
    Tracer("IMP", "spect", "I-123", ".tracers:PerfusionModel",
           "123I-iodoamphetamine perfusion SPECT (S1, S3's SPECT-CBF)", physiology="perfusion", extracerebral=0.15),
    Tracer("HMPAO", "spect", "Tc-99m", ".tracers:PerfusionModel",
           "99mTc-HMPAO (exametazime) perfusion SPECT", physiology="perfusion", extracerebral=0.3),
    Tracer("ECD", "spect", "Tc-99m", ".tracers:PerfusionModel",
           "99mTc-ECD (bicisate) perfusion SPECT (S2's interictal SPECT)", physiology="perfusion", extracerebral=0.1),
    Tracer("H2O", "pet", "O-15", ".tracers:PerfusionModel",
           "15O-water PET-CBF (S3)", physiology="perfusion", extracerebral=0.4),
    Tracer("FDG", "pet", "F-18", ".tracers:fdg_activity",
           "18F-FDG glucose-metabolism PET (S2)", physiology="metabolism", extracerebral=0.5),
)

_TRACERS: dict[str, Tracer] = {t.name: t for t in _BUILTIN}
#: Every registered tracer by name (read-only; :func:`registered` adds one for a while).
TRACERS: Mapping[str, Tracer] = MappingProxyType(_TRACERS)

#: The tracers that fixed parts of the simulation image: the DaT stack, S2's PET, S3's PET-CBF.
DAT = "DaT"
FDG = "FDG"
WATER = "H2O"


def tracer(name: str) -> Tracer:
    """The registered tracer ``name``; a ConfigError that names the known ones otherwise."""
    try:
        return _TRACERS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown tracer {name!r}; the simulator knows {', '.join(_TRACERS)}. Use one of these, or add "
            "a Tracer entry (and its uptake model) to spectsynth.simulate.registry: see 'Adding a tracer' in "
            "its docstring") from None


@contextmanager
def registered(*extra: Tracer) -> Iterator[Mapping[str, Tracer]]:
    """Add tracers to the registry for the duration of a ``with`` block (tests, notebooks).

    Yields :data:`TRACERS`; a name that is already registered is refused.
    """
    clash = [t.name for t in extra if t.name in _TRACERS]
    if clash:
        raise ConfigError(f"tracer(s) {', '.join(clash)} already registered; choose another name")
    try:
        for t in extra:
            _TRACERS[t.name] = t
        yield TRACERS
    finally:
        for t in extra:
            _TRACERS.pop(t.name, None)


def perfusion_agents() -> tuple[str, ...]:
    """The SPECT perfusion agents (modality spect, physiology perfusion): what
    ``simulate.perfusion.tracer`` and ``simulate.interictal.tracer`` may name."""
    return tuple(t.name for t in _TRACERS.values() if t.modality == "spect" and t.physiology == "perfusion")


#: Config sections that choose a tracer (``simulate.<section>.tracer``) -> the tracers it may name.
TRACER_SECTIONS: Mapping[str, Callable[[], tuple[str, ...]]] = MappingProxyType({
    "perfusion": perfusion_agents,
    "interictal": perfusion_agents,
})


def spect_isotopes() -> tuple[str, ...]:
    """The isotopes of the registered SPECT tracers, in registry order (keys of ``spect.tail_fraction``)."""
    return tuple(dict.fromkeys(t.isotope for t in _TRACERS.values() if t.modality == "spect"))


def extracerebral_defaults() -> dict[str, float]:
    """``simulate.physiology.extracerebral``'s defaults: each tracer that has one, in registry order."""
    return {t.name: t.extracerebral for t in _TRACERS.values() if t.extracerebral is not None}


def extracerebral_options() -> dict[str, dict]:
    """The options of ``simulate.physiology.extracerebral`` (the simulator's options.yaml names
    this): one number per tracer that has a default, with the tracer's description."""
    return {name: {"type": "number", "minimum": 0, "maximum": 5, "default": value,
                   "description": _TRACERS[name].description}
            for name, value in extracerebral_defaults().items()}


def group_names() -> tuple[str, ...]:
    """The tracer groups ``simulate.tracers`` may list (and lists by default), in registry order."""
    return tuple(GROUPS)


# ---------------------------------------------------------------------------------------------
# Tracer groups and their scans
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scan:
    """A scanner-frame scan the simulation writes (in its own scanner frame, registered later).

    Imaged with the fixed ``tracer``, or with the tracer chosen in ``simulate.<tracer_from>.tracer``;
    its modality is that tracer's.  ``desc`` is its BIDS ``desc-`` entity (none when empty),
    ``title`` its montage title (not shown when empty).
    """

    name: str
    group: str
    tracer: str | None = None
    tracer_from: str | None = None
    desc: str = ""
    title: str = ""

    def tracer_of(self, chosen: Mapping[str, str]) -> Tracer:
        """The scan's tracer, given the configured choices (``{section: tracer name}``)."""
        return tracer(chosen[self.tracer_from] if self.tracer_from else self.tracer)


@dataclass(frozen=True)
class TracerGroup:
    """A group of ``simulate.tracers``: one simulation rule and the scans it writes in scanner frames."""

    name: str
    scans: tuple[str, ...]
    description: str


SCANS: Mapping[str, Scan] = MappingProxyType({s.name: s for s in (
    Scan("perfusion", "perfusion", tracer_from="interictal"),
    Scan("fdg", "pet", tracer=FDG, title="FDG-PET"),
    Scan("cbf_spect", "pet", tracer_from="perfusion", desc="cbf", title="SPECT-CBF"),
    Scan("cbf_pet", "pet", tracer=WATER, desc="cbf", title="PET-CBF (15O-water)"),
)})

GROUPS: Mapping[str, TracerGroup] = MappingProxyType({g.name: g for g in (
    TracerGroup("DaT", (), "S0's DaT stack (the DaT tracer, PBR/CBR/SLR degradations)"),
    TracerGroup("perfusion", ("perfusion",),
                "the perfusion stack of simulate.perfusion.tracer (S1) and S2's interictal SPECT"),
    TracerGroup("pet", ("fdg", "cbf_spect", "cbf_pet"), "S2's FDG-PET and S3's SPECT-CBF / PET-CBF pair"),
)})


def one_of(names) -> str:
    """``"a, b or c"``: the names for a message."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


__all__ = ["DAT", "FDG", "GROUPS", "ISOTOPES", "SCANS", "TRACERS", "TRACER_SECTIONS", "WATER", "Isotope", "Scan",
           "Tracer", "TracerGroup", "extracerebral_defaults", "one_of", "perfusion_agents", "registered",
           "spect_isotopes", "tracer"]
