"""The tracer registry (spectsynth.simulate.registry): one entry per tracer, read by every part of
the simulator; the config schema names exactly the registered tracers; a tracer added at run time
is simulated through the same code as the built-in ones."""

from __future__ import annotations

import pytest

from spectsynth.config import load_schema
from spectsynth.errors import ConfigError
from spectsynth.simulate import config as sim_config
from spectsynth.simulate import registry
from spectsynth.simulate.registry import (
    GROUPS,
    ISOTOPES,
    SCANS,
    TRACER_SECTIONS,
    TRACERS,
    Tracer,
    extracerebral_defaults,
    perfusion_agents,
    registered,
    spect_isotopes,
    tracer,
)


@pytest.fixture(scope="module")
def schema(repo):
    return load_schema(repo / "config" / "schema.yaml")["properties"]["simulate"]["properties"]


# --- the registry and the config agree -------------------------------------------------------
def test_every_tracer_the_config_can_name_is_registered(schema):
    defaults = sim_config.DEFAULTS
    for section in TRACER_SECTIONS:
        assert tracer(defaults[section]["tracer"]).name == defaults[section]["tracer"]
        # The schema's enum is the registry's list (in its order), not a copy of its own.
        assert schema[section]["properties"]["tracer"]["enum"] == list(TRACER_SECTIONS[section]()), section
    assert schema["tracers"]["items"]["enum"] == list(GROUPS) == defaults["tracers"]
    extracerebral = schema["physiology"]["properties"]["extracerebral"]["properties"]
    assert list(extracerebral) == list(extracerebral_defaults()) == list(defaults["physiology"]["extracerebral"])
    assert {k: v["default"] for k, v in extracerebral.items()} == extracerebral_defaults()
    assert list(schema["spect"]["properties"]["tail_fraction"]["properties"]) == list(spect_isotopes())
    assert list(defaults["spect"]["tail_fraction"]) == list(spect_isotopes())


def test_entries_are_complete_and_their_models_import():
    assert list(TRACERS) == ["DaT", "IMP", "HMPAO", "ECD", "H2O", "FDG"]
    assert perfusion_agents() == ("IMP", "HMPAO", "ECD")
    for t in TRACERS.values():
        assert callable(t.uptake_model), t.name
        assert t.trc == t.name and t.trc.isalnum()
        assert t.energy_keV == ISOTOPES[t.isotope].energy_keV
        assert t.description
    assert tracer("DaT").physiology is None and tracer("DaT").extracerebral is None
    assert tracer("DaT").colormap == "hot" and tracer("FDG").colormap == "viridis"
    assert (tracer("IMP").energy_keV, tracer("ECD").energy_keV, tracer("H2O").modality) == (159.0, 140.0, "pet")
    with pytest.raises(TypeError):
        TRACERS["X"] = tracer("IMP")  # read-only: registered() is the way in


def test_groups_and_scans_name_registered_tracers():
    for group in GROUPS.values():
        for name in group.scans:
            assert SCANS[name].group == group.name
    assert sorted(s for g in GROUPS.values() for s in g.scans) == sorted(SCANS)
    for scan in SCANS.values():
        assert (scan.tracer is None) != (scan.tracer_from is None), scan.name
        if scan.tracer:
            tracer(scan.tracer)
        else:
            assert scan.tracer_from in TRACER_SECTIONS
    chosen = {"perfusion": "HMPAO", "interictal": "ECD"}
    assert [SCANS[s].tracer_of(chosen).name for s in GROUPS["pet"].scans] == ["FDG", "HMPAO", "H2O"]


def test_realism_bands_name_registered_tracers():
    """The QC bands keyed by tracer (spectsynth.realism) name tracers the registry knows."""
    from spectsynth.realism import BANDS

    keys = {what for _, what in BANDS}
    assert keys - {"any", *registry.MODALITIES} <= set(TRACERS)


# --- errors -----------------------------------------------------------------------------------
def test_unknown_tracer_names_the_known_ones_and_what_to_do():
    with pytest.raises(ConfigError) as err:
        tracer("MIBG")
    msg = str(err.value)
    assert "unknown tracer 'MIBG'" in msg and "DaT, IMP, HMPAO, ECD, H2O, FDG" in msg
    assert "spectsynth.simulate.registry" in msg and "Adding a tracer" in msg
    with pytest.raises(ConfigError, match=r"simulate\.perfusion\.tracer': value 'FDG' is not allowed \(allowed: 'IMP', 'HMPAO', 'ECD'\)"):
        sim_config.resolve({"perfusion": {"tracer": "FDG"}})
    with pytest.raises(ConfigError, match=r"simulate\.interictal\.tracer': value 'DaT' is not allowed"):
        sim_config.resolve({"interictal": {"tracer": "DaT"}})
    with pytest.raises(ConfigError, match="choose DaT, perfusion, pet"):
        from spectsynth.simulate.core import simulate_subject

        simulate_subject(None, {}, tracers=("MRI",))


def test_bad_entries_are_refused():
    with pytest.raises(ConfigError, match="unknown isotope 'Tl-201'"):
        Tracer("TL", "spect", "Tl-201", ".tracers:PerfusionModel", "thallium")
    with pytest.raises(ConfigError, match="modality 'mri'"):
        Tracer("X", "mri", "F-18", ".tracers:fdg_activity", "x")
    with pytest.raises(ConfigError, match="already registered"):
        with registered(tracer("IMP")):
            pass
    assert "IMP" in TRACERS  # a refused registration leaves the registry as it was


def test_physiology_and_physics_read_the_entry():
    from spectsynth.simulate.physics import make_physics
    from spectsynth.simulate.tracers import SubjectPhysiology

    assert SubjectPhysiology.kind_of("FDG") == "metabolism" and SubjectPhysiology.kind_of("H2O") == "perfusion"
    with pytest.raises(ConfigError, match="tracer DaT has no physiology kind"):
        SubjectPhysiology.kind_of("DaT")
    cfg = sim_config.resolve({})
    tails = cfg["spect"]["tail_fraction"]
    for name in ("IMP", "ECD"):
        t = tracer(name)
        p = make_physics(cfg, t.modality, t.energy_keV, isotope=t.isotope)
        assert p.tail_fraction == tails[t.isotope]
        assert make_physics(cfg, "spect", t.energy_keV).tail_fraction == p.tail_fraction  # energy only: same
    with pytest.raises(ConfigError, match="no entry for the isotope 'F-18'"):
        make_physics(cfg, "spect", 511.0, isotope="F-18")


# --- a tracer added at run time: one entry and its uptake model --------------------------------
def test_a_new_tracer_needs_only_its_entry_and_uptake_model(repo):
    import numpy as np

    from spectsynth.simulate import mni_anatomy, simulate_perfusion
    from spectsynth.simulate import paths as sim_paths
    from spectsynth.simulate.core import prepare_grid
    from spectsynth.simulate.tracers import PerfusionModel

    class ToyModel(PerfusionModel):
        """A perfusion agent that also stays a little in the CSF."""

        built: list = []

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            ToyModel.built.append(self)

        def tissue_activity(self):
            return (super().tissue_activity() + 0.2 * self.prep.fine_maps["csf"]).astype(np.float32)

    toy = Tracer("TOY", "spect", "Tc-99m", ToyModel, "a toy 99mTc perfusion agent", physiology="perfusion",
                 extracerebral=0.25)
    with pytest.raises(ConfigError, match=r"value 'TOY' is not allowed \(allowed: 'IMP', 'HMPAO', 'ECD'\)"):
        sim_config.resolve({"perfusion": {"tracer": "TOY"}})
    with registered(toy):
        assert perfusion_agents() == ("IMP", "HMPAO", "ECD", "TOY")
        # The configuration schema reads the registry: the entry is all the config needs too.
        from spectsynth.schema import assemble

        sim = assemble()["properties"]["simulate"]["properties"]
        assert sim["perfusion"]["properties"]["tracer"]["enum"] == ["IMP", "HMPAO", "ECD", "TOY"]
        assert sim["physiology"]["properties"]["extracerebral"]["properties"]["TOY"]["default"] == 0.25
        # (S3's SPECT-CBF would take it too, which the IMP kinetics refuse: the perfusion outputs only)
        cfg = sim_config.resolve({"perfusion": {"tracer": "TOY", "n_unilateral": 1, "n_bilateral": 0},
                                  "interictal": {"tracer": "TOY"}, "tracers": ["perfusion"]})
        anat = mni_anatomy(2.0, subject="toy")
        prep = prepare_grid(anat, cfg, "spect")
        stack = simulate_perfusion(anat, cfg, prep=prep)
        files = sim_paths.perfusion_files("res", "toy", cfg)
    assert "TOY" not in TRACERS  # gone after the block
    # The stack and S2's interictal SPECT both went through the toy's own model ...
    assert [m.tracer for m in ToyModel.built] == ["TOY", "TOY"]
    assert all(m.scalp_uptake == 0.25 for m in ToyModel.built)  # its default extracerebral uptake
    # ... and carry what its entry says.
    assert stack.tracer == "TOY" and [r["tracer"] for r in stack.records] == ["TOY", "TOY"]
    assert stack.meta["isotope"] == "Tc-99m" and stack.meta["energy_keV"] == 140.0
    assert stack.meta["s2_spect"]["tracer"] == "TOY" and stack.meta["interictal"]["tracer"] == "TOY"
    assert stack.records[0]["physiology_kind"] == "perfusion"
    assert stack.records[0]["meas_gm_wm"] == pytest.approx(cfg["perfusion"]["gm_wm_ratio"], abs=0.1)
    assert files["nifti"] == "res/sub-toy/spect/sub-toy_trc-TOY_spect.nii.gz"
    assert files["scan"] == "res/sub-toy/spect/sub-toy_trc-TOY_space-scanner_spect.nii.gz"
