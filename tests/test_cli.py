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
