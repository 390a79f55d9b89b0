"""S3's similarity reading: the open/blind packet, and the scorer of filled sheets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spectsynth.cli import main
from spectsynth.errors import EvaluationError
from spectsynth.reading import score_reading, similarity_packet
from spectsynth.studies.published import reading_scores


@pytest.fixture()
def packet(tmp_path):
    rng = np.random.default_rng(0)
    pet = [rng.uniform(size=(12, 12)) for _ in range(6)]
    pred = [p + 0.05 * rng.standard_normal(p.shape) for p in pet]
    spect = [p + 0.3 * rng.standard_normal(p.shape) for p in pet]
    ids = [f"sub-0{i // 2} slice {i}" for i in range(6)]
    similarity_packet(pet, {"prediction": pred, "spect": spect}, ids=ids, out_dir=tmp_path / "packet",
                      key_path=tmp_path / "key" / "key.csv", experiment="s3", seed=3)
    return tmp_path


def fill(packet, reading, reader, score_of, *, write_reader=True):
    """A reader fills the sheet: ``score_of(source)`` gives the score (the scorer sees only the image)."""
    key = pd.read_csv(packet / "key" / "key.csv", dtype=str)
    sheet = pd.read_csv(packet / "packet" / reading / "scoring_sheet.csv", dtype=str, keep_default_na=False)
    src = dict(zip(key[key["reading"] == reading]["image"], key[key["reading"] == reading]["source"]))
    sheet["score_1_to_5"] = [str(score_of(src[i], i)) for i in sheet["image"]]
    if write_reader:
        sheet["reader"] = reader
    path = packet / f"{reader}_{reading}.csv"
    sheet.to_csv(path, index=False)
    return path


def test_score_reading_summary_comparison_agreement(packet, tmp_path):
    # reader A: predictions 4, SPECT 2; reader B the same but one prediction scored 5
    a = fill(packet, "blind", "A", lambda s, i: 4 if s == "prediction" else 2)
    b = fill(packet, "blind", "B", lambda s, i: (5 if i == "001" else 4) if s == "prediction" else 2)
    o = fill(packet, "open", "A", lambda s, i: 5 if s == "prediction" else 3)
    t = score_reading([a, b, o], packet / "key" / "key.csv", published=reading_scores())
    summ = t["summary"].set_index(["reading", "source"])
    assert summ.loc[("blind", "spect"), "mean"] == 2.0 and summ.loc[("blind", "spect"), "n_readers"] == 2
    assert summ.loc[("blind", "prediction"), "n_scores"] == 12
    key = pd.read_csv(packet / "key" / "key.csv", dtype=str).query("reading == 'blind'")
    first_is_prediction = key.set_index("image").loc["001", "source"] == "prediction"
    expected = (4 * 11 + 5) / 12 if first_is_prediction else 4.0
    assert summ.loc[("blind", "prediction"), "mean"] == pytest.approx(expected)
    assert summ.loc[("open", "prediction"), "mean"] == 5.0
    assert summ.loc[("blind", "prediction"), "published_mean"] == 3.5           # S3's blind score
    comp = t["comparison"].set_index("reading")
    assert comp.loc["blind", "test"].startswith("Wilcoxon") and comp.loc["blind", "n"] == 6
    assert comp.loc["blind", "p"] < 0.05
    ag = t["agreement"]
    assert set(ag["reading"]) == {"blind"}                                  # open has one reader
    kappa = ag[ag["statistic"].str.startswith("Cohen")]["value"].iat[0]
    assert 0.8 < kappa < 1.0                                                # near-perfect, not perfect


def test_score_reading_cli_and_errors(packet, tmp_path, capsys):
    a = fill(packet, "blind", "A", lambda s, i: 3, write_reader=False)      # reader from the file name
    assert main(["score-reading", str(a), str(packet / "key" / "key.csv"), "-o", str(tmp_path / "out")]) == 0
    summary = pd.read_csv(tmp_path / "out" / "reading_summary.tsv", sep="\t")
    assert set(summary["source"]) == {"prediction", "spect"} and (summary["mean"] == 3).all()
    assert "needs two or more readers" in capsys.readouterr().out
    bad = fill(packet, "blind", "C", lambda s, i: 7)
    with pytest.raises(EvaluationError, match="outside the integers 1..5"):
        score_reading([bad], packet / "key" / "key.csv")
    assert main(["score-reading", str(bad), str(packet / "key" / "key.csv")]) == 1
    with pytest.raises(EvaluationError, match="not a reading key"):
        score_reading([a], a)


def test_score_reading_unpaired_sources(tmp_path):
    """S1's real-vs-generated packets have no shared slices: Mann-Whitney U."""
    key = pd.DataFrame({"image": ["001", "002", "003", "004"], "file": [""] * 4,
                        "source": ["real", "generated", "real", "generated"],
                        "original_id": ["r1", "g1", "r2", "g2"], "condition": [""] * 4})
    key.to_csv(tmp_path / "key.csv", index=False)
    sheet = pd.DataFrame({"image": key["image"], "file": "", "score_1_to_5": [5, 2, 4, 1],
                          "judged_real_yes_no": "", "comment": ""})
    sheet.to_csv(tmp_path / "r1.csv", index=False)
    comp = score_reading([tmp_path / "r1.csv"], tmp_path / "key.csv")["comparison"]
    assert comp["test"].iat[0].startswith("Mann-Whitney") and comp["n"].iat[0] == 4
