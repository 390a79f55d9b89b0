"""Content checksums (spectsynth.checksums): the same content written at different times gives
the same digest; a changed voxel, weight, cell or pixel gives another; timings do not count."""

from __future__ import annotations

import gzip
import json
import time

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from spectsynth.checksums import (
    compare_digests,
    content_digest,
    is_timing_name,
    read_digests,
    tree_digests,
    write_digests,
)
from spectsynth.errors import InputDataError


def _volume(value: float = 0.0) -> nib.Nifti1Image:
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    data[1, 2, 3] += value
    return nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))


def _h5(path, *, seconds: float, value: float = 0.0, attr: str = "s0") -> None:
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["dataset"] = attr
        f.attrs["seconds"] = seconds
        d = np.ones((3, 2, 4, 4), dtype=np.float32)
        d[0, 0, 0, 0] += value
        f.create_dataset("images", data=d, track_times=True)
        f.create_dataset("row", data=np.arange(3), track_times=True)


def _checkpoint(wall: float, weight: float = 0.0) -> dict:
    w = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    w[0, 0] += weight
    return {"format": "spectsynth-checkpoint", "epoch": 2, "integrity": f"{wall:.6f}",
            "nets": {"vae": {"enc.weight": w, "enc.bias": torch.zeros(3)}},
            "history": [{"epoch": 1, "loss": 0.5, "epoch_seconds": wall, "images_per_second": 100 / wall,
                         "data_wait_share": wall / 10}],
            "data_wait": wall / 3, "rng": {"torch": torch.ones(5, dtype=torch.uint8), "python": [3, [1, 2], None]},
            "torch_version": "x"}


def _png(path, *, software: str, pixel: int = 0) -> None:
    a = np.zeros((8, 10, 3), dtype=np.uint8)
    a[2, 3] = (pixel, 0, 0)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", software)
    Image.fromarray(a).save(path, pnginfo=info)


def _write_set(d, *, wall: float) -> None:
    d.mkdir(parents=True)
    nib.save(_volume(), d / "v.nii.gz")
    _h5(d / "shard.h5", seconds=wall)
    torch.save(_checkpoint(wall), d / "last.pt")
    _png(d / "fig.png", software=f"matplotlib {wall}")
    (d / "t.json").write_text(json.dumps({"value": 1.5, "written_at": f"2026-01-01T00:00:{int(wall):02d}",
                                          "seconds": wall, "path": f"{d}/v.nii.gz"}))
    (d / "history.csv").write_text(f"epoch,loss,epoch_seconds,images_per_second\n1,0.5,{wall},{100 / wall}\n")


def test_same_content_written_at_different_times_gives_the_same_digest(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _write_set(a, wall=1.25)
    time.sleep(1.1)                  # gzip and HDF5 store time stamps in whole seconds
    _write_set(b, wall=7.5)
    # the bytes differ (HDF5 object times, PNG text, timings)...
    for name in ("shard.h5", "fig.png", "history.csv", "last.pt"):
        assert (a / name).read_bytes() != (b / name).read_bytes(), name
    # ...the content does not (the folder's own path in the JSON is replaced, too)
    da, db = tree_digests(a), tree_digests(b)
    assert set(da) == {"v.nii.gz", "shard.h5", "last.pt", "fig.png", "t.json", "history.csv"}
    assert da == db


def test_nifti_one_voxel_or_the_affine_changed_gives_another_digest(tmp_path):
    nib.save(_volume(), tmp_path / "a.nii.gz")
    nib.save(_volume(0.5), tmp_path / "b.nii.gz")
    moved = _volume()
    moved.affine[0, 3] = 1.0
    moved = nib.Nifti1Image(moved.get_fdata(dtype=np.float32), moved.affine)
    nib.save(moved, tmp_path / "c.nii.gz")
    nib.save(nib.Nifti1Image(_volume().get_fdata().astype(np.float64), _volume().affine), tmp_path / "d.nii")
    digests = [content_digest(tmp_path / n) for n in ("a.nii.gz", "b.nii.gz", "c.nii.gz", "d.nii")]
    assert len(set(digests)) == 4
    # the same image uncompressed, with another gzip time stamp: the same
    raw = gzip.decompress((tmp_path / "a.nii.gz").read_bytes())
    (tmp_path / "e.nii.gz").write_bytes(gzip.compress(raw, mtime=12345))
    (tmp_path / "e.nii").write_bytes(raw)
    assert content_digest(tmp_path / "e.nii.gz") == digests[0]
    assert content_digest(tmp_path / "e.nii") == digests[0]


def test_h5_data_and_attributes_count_timings_do_not(tmp_path):
    _h5(tmp_path / "a.h5", seconds=1.0)
    _h5(tmp_path / "b.h5", seconds=2.0)
    _h5(tmp_path / "c.h5", seconds=1.0, value=1e-3)
    _h5(tmp_path / "d.h5", seconds=1.0, attr="s1")
    a, b, c, d = (content_digest(tmp_path / f"{n}.h5") for n in "abcd")
    assert a == b
    assert len({a, c, d}) == 3


def test_checkpoint_weights_count_timings_and_integrity_do_not(tmp_path):
    torch.save(_checkpoint(1.0), tmp_path / "a.pt")
    torch.save(_checkpoint(3.0), tmp_path / "b.pt")
    torch.save(_checkpoint(1.0, weight=1e-7), tmp_path / "c.pt")
    ck = _checkpoint(1.0)
    ck["epoch"] = 3
    torch.save(ck, tmp_path / "d.pt")
    a, b, c, d = (content_digest(tmp_path / f"{n}.pt") for n in "abcd")
    assert a == b
    assert len({a, c, d}) == 3


def test_table_timing_column_changed_gives_the_same_digest(tmp_path):
    head = "epoch\tloss\tepoch_seconds\timages_per_second\tdata_wait_share\tval_score\n"
    (tmp_path / "a.tsv").write_text(head + "1\t0.5\t1.25\t80.1\t0.02\t0.9\n")
    (tmp_path / "b.tsv").write_text(head + "1\t0.5\t9.75\t10.3\t0.30\t0.9\n")
    (tmp_path / "c.tsv").write_text(head + "1\t0.5\t1.25\t80.1\t0.02\t0.91\n")
    a, b, c = (content_digest(tmp_path / f"{n}.tsv") for n in "abc")
    assert a == b
    assert a != c
    for name in ("seconds", "epoch_seconds", "images_per_second", "img_per_s", "data_wait_share", "written_at",
                 "hostname", "cpu_time", "duration"):
        assert is_timing_name(name), name
    for name in ("val_score", "meas_sbr_putamen", "z_start_mm", "step", "epoch", "lr", "kl_weight", "slope"):
        assert not is_timing_name(name), name


def test_png_pixels_count_metadata_does_not(tmp_path):
    _png(tmp_path / "a.png", software="matplotlib 3.9")
    _png(tmp_path / "b.png", software="matplotlib 3.10")
    _png(tmp_path / "c.png", software="matplotlib 3.9", pixel=1)
    a, b, c = (content_digest(tmp_path / f"{n}.png") for n in "abc")
    assert a == b != c


def test_tree_skips_logs_benchmarks_provenance_and_temporary_files(tmp_path):
    for rel in ("logs/train_model/x.log", "benchmarks/r/x.tsv", "provenance/run.json", ".snakemake/m",
                "experiments/x/.tmp-best.pt", "experiments/x/tensorboard/events.out", "experiments/x/provenance.json",
                "sub-01/anat/a.tsv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("a\n1\n")
    assert list(tree_digests(tmp_path)) == ["sub-01/anat/a.tsv"]
    assert len(tree_digests(tmp_path, exclude=())) == 8


def test_results_folder_path_in_tables_is_neutral(tmp_path):
    for run in ("a", "b"):
        d = tmp_path / run / "results"
        d.mkdir(parents=True)
        (d / "index.tsv").write_text(f"subject\tsource\n01\t{d}/sub-01/spect/x.nii.gz[0]\n")
    assert tree_digests(tmp_path / "a" / "results") == tree_digests(tmp_path / "b" / "results")


def test_relative_results_folder_counts_only_where_it_starts_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for run in ("a", "b"):
        (tmp_path / run / "results").mkdir(parents=True)
    (tmp_path / "a" / "results" / "t.tsv").write_text("source\tnote\na/results/sub-01/x.nii.gz\tgood results\n")
    (tmp_path / "b" / "results" / "t.tsv").write_text("source\tnote\nb/results/sub-01/x.nii.gz\tgood results\n")
    assert tree_digests("a/results") == tree_digests("b/results")
    # a word in a cell is no path: "results" is not read as the folder
    (tmp_path / "b" / "results" / "t.tsv").write_text("source\tnote\nb/results/sub-01/x.nii.gz\tgood <results>\n")
    assert tree_digests("a/results") != tree_digests("b/results")


def test_unreadable_file_is_reported_not_hashed_as_content(tmp_path):
    nib.save(_volume(), tmp_path / "a.nii.gz")
    (tmp_path / "b.nii.gz").write_bytes((tmp_path / "a.nii.gz").read_bytes()[:60])
    with pytest.raises(InputDataError, match="b.nii.gz: unreadable as nifti"):
        content_digest(tmp_path / "b.nii.gz")
    digests = tree_digests(tmp_path)
    assert digests["b.nii.gz"].startswith("unreadable:")


def test_digest_table_round_trip_and_comparison(tmp_path):
    a = {"x.tsv": "1" * 64, "y.nii.gz": "2" * 64, "z.pt": "3" * 64}
    b = {"x.tsv": "1" * 64, "y.nii.gz": "4" * 64, "w.png": "5" * 64}
    assert read_digests(write_digests(a, tmp_path / "a.tsv")) == a
    diff = compare_digests(a, b)
    assert diff == {"differ": ["y.nii.gz"], "only_a": ["z.pt"], "only_b": ["w.png"], "same": ["x.tsv"]}
