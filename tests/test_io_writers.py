"""The package's shared writers: one TSV table writer, one CSV writer, both atomic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spectsynth.errors import EvaluationError
from spectsynth.io import write_csv, write_table


def test_write_table_is_pandas_tsv_without_index_and_leaves_no_temporary(tmp_path):
    table = pd.DataFrame({"subject": ["01", "02"], "ssim": [0.812345678901, 0.5], "n": [3, 4]})
    path = write_table(table, tmp_path / "sub" / "t.tsv", what="test table")
    assert path.read_text() == table.to_csv(sep="\t", index=False)
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.tsv"]
    from spectsynth.studies.s2 import evaluate as s2_evaluate
    assert s2_evaluate.write_table is write_table     # the evaluation modules use the same writer


def test_write_table_refuses_nan_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("old\n")
    with pytest.raises(EvaluationError, match=r"S2 metrics: columns \['p'\] hold missing values"):
        write_table(pd.DataFrame({"p": [0.1, np.nan]}), path, what="S2 metrics")
    assert path.read_text() == "old\n"


def test_write_csv_writes_header_and_rows(tmp_path):
    path = write_csv([{"image": "001", "file": "001.png"}], tmp_path / "key.csv", ["image", "file"])
    assert path.read_bytes() == b"image,file\r\n001,001.png\r\n"
