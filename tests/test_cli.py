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


def test_cli_plan_prints_the_published_designs(repo, capsys, monkeypatch, tmp_path):
    import re

    import yaml

    monkeypatch.chdir(repo)
    assert main(["plan", "config/config.yaml", "config/studies/s0.yaml"]) == 0
    out = capsys.readouterr().out
    assert "cohort: 45 subjects" in out
    assert re.search(r"train\s+36\s+612\s+design_set main", out)
    assert re.search(r"val\s+36\s+360\s+design_set validation", out)
    assert re.search(r"test\s+9\s+153\s+design_set main", out)
    assert re.search(r"s0_restoration\s+s0\s+612\s+360\s+153", out)
    assert main(["plan", "config/config.yaml", "config/studies/s1.yaml"]) == 0
    out = capsys.readouterr().out
    for row in (r"train\s+60\s+CER\s+248\s+66\s+0\s+314", r"train\s+60\s+BG\s+174\s+116\s+44\s+334",
                r"train\s+60\s+COR\s+129\s+109\s+52\s+290", r"s1_fastgan_B\s+s1\s+290\s+72\s+290"):
        assert re.search(row, out), row
    assert main(["plan", "config/config.yaml", "config/studies/s2.yaml"]) == 0
    assert re.search(r"s2_pix2pix_mripet_template_l1ssim\s+s2_template\s+3000\s+600\s+1200", capsys.readouterr().out)
    assert main(["plan", "config/config.yaml", "config/studies/s3.yaml"]) == 0
    assert re.search(r"s3_pix2pix\s+s3\s+2580\s+900\s+900", capsys.readouterr().out)
    # the default config (the demo) and a cohort that cannot hold the design
    assert main(["plan"]) == 0
    assert "cohort: 12 subjects" in capsys.readouterr().out
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump({"inputs": {"demo": {"n_subjects": 20}}}))
    assert main(["plan", "config/config.yaml", "config/studies/s3.yaml", str(small)]) == 1
    err = capsys.readouterr().err
    assert "split.counts asks for 43 + 15 + 15 = 73 subjects, but the cohort has 20" in err
