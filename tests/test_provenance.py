"""Provenance: every result folder says which rule, configuration, versions and commit made it."""

from __future__ import annotations

import json
from types import SimpleNamespace

from conftest import REPO

from spectsynth.provenance import PROVENANCE_FILE, stamp_outputs, write_folder_provenance


def test_folder_provenance_records_rule_config_versions_and_commit(tmp_path):
    config = {"seed": 7, "evaluate": {"alpha": 0.01}}
    path = write_folder_provenance(tmp_path / "evaluate" / "s2", config=config, rule="evaluate_s2", repo=REPO)
    assert path == tmp_path / "evaluate" / "s2" / PROVENANCE_FILE
    rec = json.loads(path.read_text())
    assert rec["rule"] == "evaluate_s2" and rec["config"] == config
    assert rec["versions"]["torch"] != "not installed" and "spectsynth" in rec["versions"]
    assert len(rec["git"]["commit"]) == 40 and isinstance(rec["git"]["dirty"], bool)
    assert not list(path.parent.glob(".tmp-*"))            # written atomically


def test_stamp_outputs_uses_the_folder_of_a_file_or_the_folder_itself(tmp_path):
    (tmp_path / "packet").mkdir()
    smk = SimpleNamespace(output={"table": str(tmp_path / "tables" / "t.tsv"), "packet": str(tmp_path / "packet")},
                          config={"seed": 1}, rule="reading_packet")
    assert stamp_outputs(smk, "table") == tmp_path / "tables" / PROVENANCE_FILE
    assert stamp_outputs(smk, "packet") == tmp_path / "packet" / PROVENANCE_FILE
