"""The package's shared writers: one TSV table writer, one CSV writer, one figure writer, all atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spectsynth.errors import EvaluationError
from spectsynth.io import save_figure, write_csv, write_table


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


# ------------------------------------------------------------------ write_table's options
NAN_TABLE = pd.DataFrame({"subject": ["01", "02"], "sbr": [2.123456789, np.nan], "note": ["x", None]})


def _direct(table, path, **kw):
    """What pandas writes with the same options, the bytes write_table must reproduce."""
    table.to_csv(path, sep="\t", index=False, **kw)
    return path.read_bytes()


def test_write_table_na_rep_writes_missing_values_as_given(tmp_path):
    path = write_table(NAN_TABLE, tmp_path / "t.tsv", what="truth table", na_rep="n/a")
    assert path.read_text() == "subject\tsbr\tnote\n01\t2.123456789\tx\n02\tn/a\tn/a\n"
    assert path.read_bytes() == _direct(NAN_TABLE, tmp_path / "direct.tsv", na_rep="n/a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["direct.tsv", "t.tsv"]


def test_write_table_allow_missing_writes_empty_cells(tmp_path):
    path = write_table(NAN_TABLE, tmp_path / "t.tsv", what="index", allow_missing=True)
    assert path.read_text() == "subject\tsbr\tnote\n01\t2.123456789\tx\n02\t\t\n"
    assert path.read_bytes() == _direct(NAN_TABLE, tmp_path / "direct.tsv")


def test_write_table_float_format(tmp_path):
    table = pd.DataFrame({"a": [0.123456789, 12345.678901], "n": [1, 2]})
    path = write_table(table, tmp_path / "t.tsv", what="history", float_format="%.6g")
    assert path.read_text() == "a\tn\n0.123457\t1\n12345.7\t2\n"
    assert path.read_bytes() == _direct(table, tmp_path / "direct.tsv", float_format="%.6g")
    both = write_table(NAN_TABLE, tmp_path / "both.tsv", what="t", na_rep="n/a", float_format="%.3g")
    assert both.read_text() == "subject\tsbr\tnote\n01\t2.12\tx\n02\tn/a\tn/a\n"


def test_write_table_refuses_nan_by_default_even_with_a_float_format(tmp_path):
    with pytest.raises(EvaluationError, match=r"index: columns \['sbr', 'note'\] hold missing values"):
        write_table(NAN_TABLE, tmp_path / "t.tsv", what="index", float_format="%.8g")
    assert list(tmp_path.iterdir()) == []


def test_write_table_failing_midway_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("old\n")
    with pytest.raises((ValueError, TypeError)):
        write_table(pd.DataFrame({"a": [0.5]}), path, what="t", float_format="%q")   # not a format
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.tsv"]


# ------------------------------------------------------------------ save_figure
class _RecordingFigure:
    """Stands in for a matplotlib figure: records what savefig was given, writes a few bytes."""

    def __init__(self):
        self.calls = []

    def savefig(self, fname, **kwargs):
        self.calls.append((Path(fname), kwargs))
        Path(fname).write_bytes(b"figure")


def test_save_figure_passes_savefig_keywords_through_and_writes_atomically(tmp_path):
    fig = _RecordingFigure()
    meta = {"Software": None}
    path = save_figure(fig, tmp_path / "qc" / "a.svg", dpi=90, metadata=meta, facecolor="k",
                       bbox_inches="tight")
    ((fname, kwargs),) = fig.calls
    assert kwargs == {"dpi": 90, "format": "svg", "metadata": meta, "facecolor": "k", "bbox_inches": "tight"}
    assert fname.parent == path.parent and fname.name.startswith(".tmp-") and fname.name.endswith("-a.svg")
    assert path.read_bytes() == b"figure" and [p.name for p in path.parent.iterdir()] == ["a.svg"]


def test_save_figure_format_defaults_to_the_suffix_and_can_be_given(tmp_path):
    fig = _RecordingFigure()
    save_figure(fig, tmp_path / "a.png")
    save_figure(fig, tmp_path / "noext")
    save_figure(fig, tmp_path / "b.out", format="png", dpi=72)
    assert [(k["format"], k["dpi"]) for _, k in fig.calls] == [("png", 150), ("png", 150), ("png", 72)]


@pytest.mark.parametrize("kwargs", [{"dpi": 90}, {"dpi": 100, "metadata": {"Software": None}},
                                    {"dpi": 90, "facecolor": "black", "bbox_inches": "tight"},
                                    {"dpi": 110, "format": "png"}])
def test_save_figure_writes_the_bytes_savefig_writes(tmp_path, kwargs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1.5))
    FigureCanvasAgg(fig)
    fig.add_subplot().plot([0, 1, 3], [1, 0, 2])
    fig.suptitle("title")
    fig.savefig(tmp_path / "direct.png", **kwargs)
    dpi = kwargs.pop("dpi")
    path = save_figure(fig, tmp_path / "shared.png", dpi=dpi, **kwargs)
    assert path.read_bytes() == (tmp_path / "direct.png").read_bytes()


def test_plots_save_figure_is_the_shared_writer():
    from spectsynth import plots

    assert plots.save_figure is save_figure


# ------------------------------------------------------------------ save_image's gzip writer
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int16, np.float64])
def test_save_image_gz_holds_the_bytes_nibabel_writes(tmp_path, dtype):
    """The ISA-L writer gives the .nii.gz nibabel would (same image bytes once decompressed, any
    gzip reader), identical files for identical images, and no temporary left behind."""
    import gzip

    import nibabel as nib
    import SimpleITK as sitk

    from spectsynth.io import save_image

    rng = np.random.default_rng(0)
    data = (rng.normal(50, 20, (17, 13, 11)) * (rng.random((17, 13, 11)) > 0.4)).astype(dtype)
    affine = np.diag([1.5, 1.2, 2.0, 1.0])
    affine[:3, 3] = [-10, 4, 7]
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    if dtype is np.int16:
        img.header.set_slope_inter(0.5, 1.0)
    ours = save_image(img, tmp_path / "a" / "ours.nii.gz")
    theirs = tmp_path / "theirs.nii.gz"
    nib.save(img, theirs)
    assert gzip.decompress(ours.read_bytes()) == gzip.decompress(theirs.read_bytes())
    back = nib.load(ours)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), np.asanyarray(nib.load(theirs).dataobj))
    np.testing.assert_allclose(back.affine, affine, atol=1e-6)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(ours))).shape == data.shape[::-1]
    again = save_image(img, tmp_path / "b" / "ours.nii.gz")
    assert again.read_bytes() == ours.read_bytes()          # no time stamp in the gzip header
    assert sorted(p.name for p in ours.parent.iterdir()) == ["ours.nii.gz"]
