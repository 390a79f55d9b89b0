"""The verdict rule: every branch on tiny inputs."""

import pytest

from spectsynth import verdicts as V


@pytest.mark.parametrize("claim,estimate,p,power,expected", [
    ("greater", 1.0, 0.001, None, "reproduced"),
    ("greater", -1.0, 0.001, None, "reversed"),
    ("greater", 1.0, 0.4, 0.9, "not reproduced"),
    ("greater", 1.0, 0.4, 0.2, "not testable"),
    ("less", -0.5, 0.001, None, "reproduced"),
    ("equal", None, 0.4, 0.9, "reproduced"),
    ("equal", None, 0.4, 0.3, "not testable"),
    ("equal", None, 0.001, 0.9, "not reproduced"),
    ("greater", 1.0, None, None, "not testable"),
])
def test_comparison_rule(claim, estimate, p, power, expected):
    v, reason = V.comparison_verdict(claim=claim, estimate=estimate, p=p, alpha=0.05, power=power)
    assert v == expected and reason


def test_equal_claim_with_a_different_reference_is_not_testable():
    v, reason = V.comparison_verdict(claim="equal", estimate=None, p=0.5, alpha=0.05, power=0.95,
                                     reference_differs=True)
    assert v == "not testable" and "reference" in reason


@pytest.mark.parametrize("ours,baseline,higher,expected", [
    (0.80, 0.50, True, "reproduced"),
    (0.70, 0.50, True, "not reproduced"),
    (0.80, 0.79, True, "not testable"),     # the baseline reaches the published level too
    (2.0, 5.0, False, "reproduced"),         # lower is better (ASP < 3 px)
    (4.0, 5.0, False, "not reproduced"),
])
def test_level_rule(ours, baseline, higher, expected):
    published = 0.78 if higher else 3.0
    v, _ = V.level_verdict(ours=ours, published=published, baseline=baseline, higher_is_better=higher)
    assert v == expected


def test_row_rejects_a_typed_verdict():
    with pytest.raises(ValueError):
        V.row(study="S9", finding="x", measure="m", unit="", ours=1, published=1, n=3,
              n_counts="subjects", verdict=("probably fine", ""))
    table = V.frame([V.row(study="S9", finding="x", measure="m", unit="", ours=1, published=1, n=3,
                           n_counts="subjects", verdict=V.level_verdict(ours=1, published=0.5, baseline=0))])
    assert list(table.columns) == V.COLUMNS and table["verdict"].iat[0] == "reproduced"


def test_the_methods_page_states_the_rule_the_code_applies():
    from pathlib import Path

    rst = (Path(__file__).resolve().parents[1] / "workflow" / "report" / "workflow.rst").read_text()
    assert " ".join(V.RULE_TEXT.split()) in " ".join(rst.split())
