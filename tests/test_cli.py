"""The command-line entry points."""

from __future__ import annotations

from conftest import ixi_t1

from spectsynth.cli import main


def test_cli_check_real_image(ixi_dir, capsys):
    assert main(["check", str(ixi_t1(ixi_dir)), "--subject", "IXI012"]) == 0
    out = capsys.readouterr().out
    assert "OK; stored PSR" in out


def test_cli_check_bad_image(tmp_path, capsys):
    bad = tmp_path / "x.nii.gz"
    bad.write_bytes(b"garbage")
    assert main(["check", str(bad), "--subject", "07"]) == 1
    assert "subject 07" in capsys.readouterr().err


def test_cli_config_and_resources(repo, capsys):
    assert main(["config", str(repo / "config/config.yaml"), "--schema",
                 str(repo / "config/schema.yaml")]) == 0
    assert "n_subjects: 12" in capsys.readouterr().out
    assert main(["resources"]) == 0
    assert "mni152_t1" in capsys.readouterr().out


def test_cli_demo(tmp_path):
    assert main(["demo", str(tmp_path), "--n-subjects", "1", "--voxel-mm", "3", "3", "3"]) == 0
    assert (tmp_path / "sub-01" / "anat" / "sub-01_T1w.nii.gz").exists()
    assert (tmp_path / "participants.tsv").exists()


def _results(root, value: str = "0.5"):
    (root / "evaluate").mkdir(parents=True)
    (root / "logs").mkdir()
    (root / "evaluate" / "table.tsv").write_text(f"subject\tscore\tseconds\n01\t{value}\t{len(str(root))}\n")
    (root / "logs" / "x.log").write_text(str(root))
    return root


def test_cli_checksum_writes_and_compares(tmp_path, capsys):
    a, b = _results(tmp_path / "a"), _results(tmp_path / "bb")
    table = tmp_path / "a.tsv"
    assert main(["checksum", str(a), "-o", str(table)]) == 0
    assert "1 content checksums" in capsys.readouterr().out
    assert table.read_text().splitlines()[1].startswith("evaluate/table.tsv\ttable\t")
    assert main(["checksum", str(b), "--compare", str(table)]) == 0
    assert "1 files identical in content, 0 differ" in capsys.readouterr().out
    c = _results(tmp_path / "c", value="0.6")
    assert main(["checksum", str(c), "--compare", str(a)]) == 1
    out = capsys.readouterr().out
    assert "differs: evaluate/table.tsv" in out and "1 differ" in out


def test_cli_checksum_of_a_missing_folder(tmp_path, capsys):
    assert main(["checksum", str(tmp_path / "nope")]) == 1
    assert "not a folder" in capsys.readouterr().err
