"""The one builder of BIDS-derivatives file names (spectsynth.paths.bids)."""

from __future__ import annotations

import pytest

from spectsynth.paths import ENTITY_ORDER, bids, entities_of, entity_wildcard


def test_entities_follow_bids_order_whatever_order_they_are_given_in():
    assert bids("out", subject="01", datatype="pet", desc="cbf", space="T1w", trc="H2O",
                suffix="pet") == "out/sub-01/pet/sub-01_trc-H2O_space-T1w_desc-cbf_pet.nii.gz"
    assert bids("out", subject="01", datatype="anat", label="GM", suffix="probseg") == \
        "out/sub-01/anat/sub-01_label-GM_probseg.nii.gz"
    assert bids(subject="01", session="2", datatype="anat", suffix="T1w", extension=".json") == \
        "sub-01/ses-2/anat/sub-01_ses-2_T1w.json"
    assert bids("out", subject="01", datatype="anat", suffix="levels", extension=".tsv") == \
        "out/sub-01/anat/sub-01_levels.tsv"


def test_transform_entities_and_desc_keep_the_order_given():
    xfm = dict(subject="01", datatype="xfm", suffix="xfm", extension=".tfm")
    assert bids("o", **xfm, trc="H2O", desc="cbf", from_="pet", to="T1w", mode="image") == \
        "o/sub-01/xfm/sub-01_trc-H2O_desc-cbf_from-pet_to-T1w_mode-image_xfm.tfm"
    assert bids("o", **xfm, from_="T1w", to="atlas", desc="striatumL", mode="image") == \
        "o/sub-01/xfm/sub-01_from-T1w_to-atlas_desc-striatumL_mode-image_xfm.tfm"


def test_wildcards_make_rule_patterns():
    assert bids("o", subject="{subject}", datatype="{datatype}", desc="ras", suffix="{suffix}") == \
        "o/sub-{subject}/{datatype}/sub-{subject}_desc-ras_{suffix}.nii.gz"
    assert bids("o", subject="{subject}", datatype="{modality}", trc=entity_wildcard("{trc}"),
                space="T1w", desc=entity_wildcard("{desc}"), suffix="{modality}") == \
        "o/sub-{subject}/{modality}/sub-{subject}{trc}_space-T1w{desc}_{modality}.nii.gz"


@pytest.mark.parametrize("bad", [dict(desc="a_b"), dict(desc="a-b"), dict(desc=""), dict(space="x/y")])
def test_values_that_no_bids_tool_could_parse_are_refused(bad):
    with pytest.raises(ValueError, match="not a BIDS label"):
        bids("o", subject="01", suffix="T1w", **bad)


def test_an_entity_given_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        bids("o", subject="01", suffix="T1w", trc="FDG", tracer="H2O")


def test_entities_of_reads_the_workflows_entity_strings():
    assert entities_of("_trc-FDG_desc-cbf") == {"trc": "FDG", "desc": "cbf"}
    assert entities_of("") == {}
    with pytest.raises(ValueError):
        entities_of("_trc")


def test_entity_order_is_the_bids_schemas():
    from bidsschematools.schema import load_schema

    schema = load_schema()
    assert ENTITY_ORDER == tuple(schema.objects.entities[e].name for e in schema.rules.entities)


def test_the_file_name_alone():
    from spectsynth.paths import bids_name

    assert bids_name(subject="01", desc="striatum", suffix="dseg", extension=".tsv") == \
        "sub-01_desc-striatum_dseg.tsv"


def test_bids_label_keeps_letters_and_digits():
    from spectsynth.paths import bids_label, bids_name

    assert bids_label("s3_pix2pix") == "s3pix2pix"
    assert bids_name(subject="01", run="2", desc=bids_label("s0_clinical"), suffix="pred") == \
        "sub-01_run-2_desc-s0clinical_pred.nii.gz"
    with pytest.raises(ValueError, match="no letters or digits"):
        bids_label("_-_")
