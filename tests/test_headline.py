"""The headline: verdict tables stacked and rendered; the README's block is the demo's generated one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from spectsynth import headline as H
from spectsynth import verdicts as V
from spectsynth.cli import main

REPO = Path(__file__).resolve().parents[1]


def _verdicts(tmp_path: Path, name: str, ours: float) -> Path:
    rows = [V.row(study="S9", finding="Dice", measure="left", unit="%", ours=ours, published=78, n=3,
                  n_counts="test subjects", baseline=50, baseline_name="input",
                  verdict=V.level_verdict(ours=ours, published=78, baseline=50))]
    path = tmp_path / name
    V.frame(rows).to_csv(path, sep="\t", index=False)
    return path


def test_collect_and_render(tmp_path):
    a, b = _verdicts(tmp_path, "a.tsv", 80), _verdicts(tmp_path, "b.tsv", 60)
    table = H.collect([a, b], {str(a): "exp_a"})
    assert list(table.columns) == H.HEADLINE_COLUMNS
    assert table["experiment"].tolist() == ["exp_a", ""]
    text = H.render(table)
    assert "reproduced 1" in text and "not reproduced 1" in text and "3 test subjects" in text
    assert "50 (input)" in text and "Why each verdict" not in text
    assert "1. S9 exp_a Dice (left): **reproduced**, ours 80 reaches" in H.render(table, reasons=True)


def test_readme_check_fails_when_the_numbers_differ(tmp_path, capsys):
    a = _verdicts(tmp_path, "a.tsv", 80)
    table_path = tmp_path / "headline.tsv"
    H.collect([a]).to_csv(table_path, sep="\t", index=False)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{H.START}\nold typed numbers\n{H.END}\n\nrest\n")
    assert main(["headline", str(table_path), "--readme", str(readme)]) == 1
    assert main(["headline", str(table_path), "--readme", str(readme), "--update"]) == 0
    assert main(["headline", str(table_path), "--readme", str(readme)]) == 0
    assert readme.read_text().endswith("\n\nrest\n") and "old typed" not in readme.read_text()


def test_the_readme_quotes_the_demo_headline():
    """README.md's demo numbers are exactly what the demo's generated headline table gives
    (docs/demo/headline.tsv, copied from results/headline.tsv of `./run.sh demo`)."""
    table = REPO / "docs" / "demo" / "headline.tsv"
    text = (REPO / "README.md").read_text()
    block = H.readme_block(text)
    assert block is not None, "README.md lost its generated headline block"
    if not table.exists():
        pytest.fail("docs/demo/headline.tsv is missing: copy results/headline.tsv of a demo run there")
    got = H.render(pd.read_csv(table, sep="\t", dtype=str, keep_default_na=False))
    assert block == got, ("README.md's headline differs from docs/demo/headline.tsv; run "
                          "spectsynth headline docs/demo/headline.tsv --readme README.md --update")
    assert set(pd.read_csv(table, sep="\t")["verdict"]) <= set(V.VERDICTS)
