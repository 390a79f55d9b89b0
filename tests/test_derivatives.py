"""The results folder is a BIDS-derivatives dataset that BIDS tools read as intended.

Checked with pybids (the BIDS reference library: its derivatives description check and its
file-name parser) and the bids-validator package (raw-dataset rules, for the demo's own raw
dataset): every per-subject file name must parse into exactly the entities it was built from,
in BIDS's order, and everything else at the top of the results folder must be in .bidsignore.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from spectsynth import derivatives
from spectsynth.paths import ENTITY_ORDER
from spectsynth.preprocess import paths as pp_paths
from spectsynth.simulate import paths as sim_paths

# pybids' entity names -> the keys in file names
KEYS = {"subject": "sub", "session": "ses", "tracer": "trc", "acquisition": "acq",
        "reconstruction": "rec", "run": "run", "space": "space", "label": "label", "desc": "desc",
        "from": "from", "to": "to", "mode": "mode", "atlas": "atlas", "hemi": "hemi", "res": "res"}
# Folders of sub-<label>/ that are not BIDS datatypes but hold BIDS-named files: SPECT (no BIDS
# modality yet; named like PET) and the transforms.
OTHER_DATATYPES = {"spect", "xfm"}


def bids_problem(rel: str) -> str | None:
    """Why pybids does not read the per-subject file ``rel`` as the entities in its name, else None."""
    from bids.layout import parse_file_entities

    parts = rel.split("/")
    if len(parts) != 3 or not parts[0].startswith("sub-"):
        return "not sub-<label>/<datatype>/<file>"
    folder, name = parts[1], parts[2]
    parsed = parse_file_entities("/" + rel, config=["bids", "derivatives"])
    ext = parsed.get("extension", "")
    if not ext or not name.endswith(ext):
        return f"extension not recognised (pybids: {parsed})"
    *pairs, suffix = name[: -len(ext)].split("_")
    named = [tuple(p.split("-", 1)) for p in pairs]
    if any(len(p) != 2 for p in named):
        return "a part of the name is not key-value"
    if parsed.get("suffix") != suffix:
        return f"suffix {suffix!r} read as {parsed.get('suffix')!r}"
    if parsed.get("datatype", folder if folder in OTHER_DATATYPES else None) != folder:
        return f"datatype folder {folder!r} read as {parsed.get('datatype')!r}"
    if named[0] != ("sub", parts[0][4:]):
        return "the name's subject is not its folder's"
    read = {(KEYS.get(k, k), str(v)) for k, v in parsed.items()
            if k not in ("suffix", "extension", "datatype")}
    if read != set(named):
        return f"entities {sorted(named)} read as {sorted(read)}"
    order = [ENTITY_ORDER.index(k) for k, _ in named if k in ENTITY_ORDER and k != "desc"]
    if order != sorted(order):
        return "entities not in BIDS order"
    return None


def ignored(rel: str, patterns: list[str]) -> bool:
    for pat in patterns:
        if pat.startswith("/") and pat.endswith("/") and rel.startswith(pat[1:]):
            return True
        if pat.endswith("/") and fnmatch.fnmatch(rel, pat + "*"):
            return True
        if fnmatch.fnmatch(rel, pat):
            return True
    return False


def test_the_description_is_a_derivatives_description_pybids_accepts(tmp_path):
    from bids import BIDSLayout

    root = tmp_path / "results"
    derivatives.write_dataset_files(root / "dataset_description.json", root / ".bidsignore",
                                    source="demo")
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "spectsynth"
    assert desc["GeneratedBy"][0]["Version"] and desc["DatasetLinks"] == {"raw": "demo-bids/"}
    layout = BIDSLayout(root, is_derivative=True, validate=True)      # raises on a bad description
    assert layout.description["Name"] == desc["Name"]
    bids_in = tmp_path / "in"
    assert derivatives.dataset_description("bids", bids_in)["DatasetLinks"]["raw"] == bids_in.as_uri()


def test_every_per_subject_name_the_workflow_builds_reads_as_built():
    """All per-subject targets of the path modules (every tracer, PET and SPECT inputs)."""
    cfg = {"tracers": ["DaT", "perfusion", "pet"]}
    files = (sim_paths.targets("res", ["01"], cfg)
             + pp_paths.preprocess_targets("res", ["01"], lambda s, m: True)
             + pp_paths.anatomy_targets("res", ["01"])
             + pp_paths.registration_qc_files("res", ["01"], lambda s, m: True)
             + [v for sc in sim_paths.scans("res", "01", cfg).values() for k, v in sc.items()
                if k in ("frame", "frame_json", "native", "template", "xfm", "qc", "native_brain",
                         "template_brain", "native_mask", "template_mask", "brain_qc")])
    rel = sorted({f.removeprefix("res/") for f in files if f.startswith("res/sub-")})
    patterns = derivatives.bidsignore().split()
    checked = [r for r in rel if not ignored(r, patterns)]
    assert len(checked) > 40
    problems = {r: bids_problem(r) for r in checked}
    assert not {r: p for r, p in problems.items() if p}


def test_a_misnamed_file_is_caught():
    assert bids_problem("sub-01/anat/sub-01_desc-brain_T1w.nii.gz") is None
    assert "BIDS order" in bids_problem("sub-01/pet/sub-01_space-T1w_trc-FDG_pet.nii.gz")
    assert bids_problem("sub-01/anat/sub-01_foo_T1w.nii.gz")
    assert "datatype" in bids_problem("sub-01/figs/sub-01_desc-x_qc.png")
    assert "subject" in bids_problem("sub-01/anat/sub-02_T1w.nii.gz")


@pytest.mark.slow
def test_the_tiny_results_folder_is_a_bids_derivatives_dataset(tiny_run):
    from bids import BIDSLayout
    from bids_validator import BIDSValidator

    root = Path(tiny_run)
    BIDSLayout(root, is_derivative=True, validate=True)
    patterns = (root / ".bidsignore").read_text().split()
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    # (hidden entries, such as the output folder's lock, are skipped by BIDS tools)
    top = {f.split("/")[0] for f in files if not f.startswith(".")} - {"dataset_description.json"}
    assert not {t for t in top if not t.startswith("sub-") and not ignored(t + "/", patterns)
                and not ignored(t, patterns)}, "top-level entries neither BIDS nor in .bidsignore"
    per_subject = [f for f in files if f.startswith("sub-") and not ignored(f, patterns)]
    assert per_subject
    assert not {f: p for f in per_subject if (p := bids_problem(f))}
    # The demo's own raw dataset: raw BIDS, checked by the validator's rules.
    raw = root / "demo-bids"
    validator = BIDSValidator()
    raw_files = ["/" + str(p.relative_to(raw)) for p in raw.rglob("*")
                 if p.is_file() and "derivatives" not in p.parts]
    assert raw_files and not [f for f in raw_files if not validator.is_bids(f)]
    BIDSLayout(raw, validate=True)
