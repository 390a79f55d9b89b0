# Shared definitions: config validation, the subject list, input functions, targets.
import atexit
import gc
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from spectsynth import outputlock
from spectsynth.config import alternation, validate_config
from spectsynth.errors import SpectsynthError
from spectsynth.schema import assemble as assemble_schema
from spectsynth.scheduler import script_checks_once, single_reevaluation
from spectsynth.experiments import expand_experiments
from spectsynth.studies import REGISTRY as STUDIES
from spectsynth.studies import Context, dataset_names
from spectsynth.studies import dataset_subject_files as study_subject_files
from spectsynth.inputs.cohort import cohort_resected
from spectsynth.inputs.demo import subject_labels
from spectsynth.inputs.demo import subject_settings as demo_subject_settings
from spectsynth.inputs.demo import truth_paths as demo_truth_paths
from spectsynth.artifacts import experiment_files, prediction_files
from spectsynth.models import REGISTRY as MODEL_FAMILIES
from spectsynth.models import get_family
from spectsynth.paths import bids, entity_wildcard
from spectsynth.preprocess import paths as pp_paths
from spectsynth.simulate import paths as sim_paths
from spectsynth.simulate.config import resolve as resolve_simulation
from spectsynth.realism import paired_datasets as realism_paired_datasets
from spectsynth.realism import roi_datasets as realism_roi_datasets

try:
    # The schema of the registered studies and model families, assembled from their option
    # fragments (config/schema.yaml is the same, committed for reading; spectsynth.schema).
    validate_config(config, assemble_schema())
except SpectsynthError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None

# Snakemake keeps every job of the DAG alive until it exits: for 1000 subjects (14k jobs) some 1.6
# million long-lived objects, which Python's cyclic garbage collector traversed again and again as
# the DAG grew (18 full collections freeing 394 objects) and once more at exit: about a third of the
# CPU time of `snakemake -n`. Young-generation collections stay as they are; full ones become rare,
# and what is alive at exit is left out of the final collection. What the workflow plans or runs is
# unchanged.
gc.set_threshold(*gc.get_threshold()[:2], 1000)
# (unregister first: one exit hook, however often the workflow is parsed in this process)
atexit.unregister(gc.freeze)
atexit.register(gc.freeze)
# One wake-up timer pending in Snakemake's scheduler loop, not one more per finished job (which
# kept the main process busy with hundreds of timer threads on the reference runs;
# spectsynth.scheduler). Which jobs run, and when, is unchanged. A rule's script is checked
# once, not for each of its jobs (1000 subjects: `snakemake -n` 33 -> 29 s).
single_reevaluation()
script_checks_once()

OUT = config["output_dir"]
SOURCE = config["inputs"]["source"]
REQUIRED = config["inputs"]["required_modalities"]
THREADS = config["compute"]["threads"]
MODALITY_PATH = {
    "T1w": ("anat", "T1w"),
    "pet": ("pet", "pet"),
    "spect": ("spect", "spect"),
}

# RAW[subject][modality] = the input image as it comes (before validation/reorientation).
# UNUSABLE: the same for images discovery found unusable; EXPECTED: where a missing image was
# looked for; SKIPPED: rows of the input table for subjects and images left out
# (inputs.bids.if_unusable: skip).
UNUSABLE, EXPECTED, SKIPPED = {}, {}, []
DEMO_RESECTED = set()  # the demo's post-surgical subjects (make_demo_subject)
if SOURCE == "demo":
    SUBJECTS = subject_labels(config["inputs"]["demo"]["n_subjects"])
    DEMO_RESECTED = cohort_resected(config)
    RAW = {
        s: {"T1w": bids(f"{OUT}/demo-bids", subject=s, datatype="anat", suffix="T1w")}
        for s in SUBJECTS
    }
elif SOURCE == "bids":
    from spectsynth.inputs import bids as bids_inputs

    _bids = config["inputs"]["bids"]
    if not _bids["root"]:
        raise WorkflowError(
            "invalid configuration: inputs.source is 'bids' but inputs.bids.root is not set"
        )
    try:
        _units = bids_inputs.discover(
            _bids["root"],
            _bids["participant_label"],
            _bids["session"],
            _bids["exclude"],
        )
    except SpectsynthError as exc:
        raise WorkflowError(str(exc)) from None
    if _bids["if_unusable"] == "skip":
        _units, SKIPPED = bids_inputs.split_unusable(_units, REQUIRED, _bids["root"])
        for _row in SKIPPED:
            logger.warning(
                f"subject {_row['subject']}: skipped ({_row['problem']}); "
                "listed in inputs/inputs.tsv"
            )
    SUBJECTS = [u.label for u in _units]
    RAW = {u.label: {m: str(p) for m, p in u.files.items()} for u in _units}
    # Images that are there but unusable (broken link, empty, unreadable): not declared as
    # inputs, so that they cannot stop the planning of the other subjects; the subject's
    # validate_image job reads the path and fails with the reason.
    UNUSABLE = {u.label: {m: str(p[0]) for m, p in u.problems.items()} for u in _units}
    EXPECTED = {
        u.label: {m: u.expected(m, Path(_bids["root"])) for m in MODALITY_PATH}
        for u in _units
    }
else:  # dicom
    from spectsynth.inputs import dicom as dicom_inputs

    _dcm = config["inputs"]["dicom"]
    if not _dcm["root"]:
        raise WorkflowError(
            "invalid configuration: inputs.source is 'dicom' but inputs.dicom.root is not set"
        )
    try:
        DICOM_DIRS = {
            k: str(v)
            for k, v in dicom_inputs.discover(
                _dcm["root"], _dcm["participant_label"]
            ).items()
        }
    except SpectsynthError as exc:
        raise WorkflowError(str(exc)) from None
    SUBJECTS = sorted(DICOM_DIRS)
    RAW = {
        s: {
            m: bids(
                f"{OUT}/dicom-bids",
                subject=s,
                datatype=MODALITY_PATH[m][0],
                suffix=MODALITY_PATH[m][1],
            )
            for m, pattern in _dcm["series"].items()
            if pattern
        }
        for s in SUBJECTS
    }

# One run at a time per output folder (spectsynth.outputlock): taken when the main process starts
# executing jobs; dry runs and jobs (which run with --no-hooks) never take it.
if workflow.is_main_process:
    _holder = outputlock.holder(OUT)
    if _holder:
        logger.warning(
            f"{OUT} is in use by another run ({_holder}); a run that executes jobs is refused "
            "until it ends"
        )


onstart:
    if workflow.is_main_process:
        try:
            outputlock.acquire(OUT)
        except SpectsynthError as exc:
            raise WorkflowError(str(exc)) from None


# Position of each subject in SUBJECTS (make_demo_subject builds the demo subject of that index).
SUBJECT_INDEX = {s: i for i, s in enumerate(SUBJECTS)}

# What every stage reads: the simulator's settings, the resolved experiments
# (spectsynth.experiments), the datasets of the studies (spectsynth.studies) and the context the
# studies' rule functions take. The stage files read these and nothing of each other's.
SIM = config.get("simulate", {})
PP_CFG = config.get("preprocess", {}) or {}
try:
    EXPERIMENTS = expand_experiments(config)
except SpectsynthError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None
DATASETS = dataset_names(config)
CTX = Context(OUT, list(SUBJECTS), EXPERIMENTS, config, SIM)
EVAL_CFG = config["evaluate"]
SCALE_LABEL = config["report"]["scale_label"]
# Each stage file appends a function giving its final targets (for rule all).
TARGETS = []
# Absolute folders of the workflow's scripts, environments and report captions, for the rule
# files that live with their study (Study.rules, included by the Snakefile's loop over STUDY_RULES).
SCRIPTS = str(Path(workflow.basedir) / "workflow" / "scripts")
ENVS = str(Path(workflow.basedir) / "envs")
CAPTIONS = str(Path(workflow.basedir) / "workflow" / "report")
STUDY_RULES = [s.rules_path() for s in STUDIES.values() if s.rules_path()]
# The {experiment} patterns of an experiment's files and of its predictions (spectsynth.artifacts,
# where every such path is spelled; the studies ask it through CTX for the same strings).
EXPERIMENT_FILES = experiment_files(OUT)
PREDICTION_FILES = prediction_files(OUT)
# The selection criteria under which a model family keeps one best checkpoint each
# (best-<criterion>.pt; Family.selection_criteria, first = default).
SELECTION_CRITERIA = tuple(
    dict.fromkeys(c for f in MODEL_FAMILIES.values() for c in f.selection_criteria)
)


wildcard_constraints:
    subject=alternation(SUBJECTS) if SUBJECTS else "NOSUBJECT",
    datatype="anat|pet|spect",
    suffix="T1w|pet|spect",


def sub_log(rule):
    return f"{OUT}/logs/{rule}/sub-{{subject}}.log"


def sub_bench(rule):
    return f"{OUT}/benchmarks/{rule}/sub-{{subject}}.tsv"


def has_modality(subject, modality):
    """True when the subject has an input image of this modality (T1w, pet, spect), usable
    or not (an unusable one fails in validate_image with the reason)."""
    return modality in RAW.get(subject, {}) or modality in UNUSABLE.get(subject, {})


def source_image(subject, modality):
    """The path validate_image reads: the usable image, else the unusable one, else None."""
    return RAW.get(subject, {}).get(modality) or UNUSABLE.get(subject, {}).get(modality)


def modality_of(suffix):
    return {"T1w": "T1w", "pet": "pet", "spect": "spect"}[suffix]


def raw_image(wildcards):
    """Input of validate_image: the raw image (and, for DICOM, its conversion folder)."""
    mod = modality_of(wildcards.suffix)
    files = {}
    if SOURCE == "dicom":
        files["converted"] = f"{OUT}/dicom-bids/sub-{wildcards.subject}"
    elif mod in RAW.get(wildcards.subject, {}):
        files["image"] = RAW[wildcards.subject][mod]
    return files


def missing_required(wildcards):
    """Required modalities this subject lacks, each with where it was looked for (checked
    when its T1w is validated). Empty, as before, for every subject that can run, so that
    finished results are not planned again."""
    if wildcards.suffix != "T1w" or SOURCE == "dicom":
        return []
    return [
        {"modality": m, "expected": EXPECTED.get(wildcards.subject, {}).get(m)}
        for m in REQUIRED
        if not has_modality(wildcards.subject, m)
    ]


def ras_image(subject, modality, extension=".nii.gz"):
    """The validated RAS+ copy of a subject's input image (or its record: extension .json)."""
    datatype, suffix = MODALITY_PATH[modality]
    return bids(
        OUT,
        subject=subject,
        datatype=datatype,
        desc="ras",
        suffix=suffix,
        extension=extension,
    )


def pp_anat(**entities):
    """An anat file of the {subject} wildcard (entities, suffix, extension as bids() takes them)."""
    return pp_paths.anat(OUT, "{subject}", **entities)


def pp_xfm(**entities):
    """A transform of the {subject} wildcard: ..._<entities>_mode-image_xfm.tfm."""
    return bids(
        OUT,
        subject="{subject}",
        datatype="xfm",
        **entities,
        mode="image",
        suffix="xfm",
        extension=".tfm",
    )


def registered_scan(wc, space):
    """register_modality's output that extract_scan_brain reads ({bdesc}: the scan's desc
    followed by "brain")."""
    desc = "" if wc.bdesc == "brain" else f"_desc-{wc.bdesc[: -len('brain')]}"
    return sim_paths.scan_file(OUT, wc.subject, wc.modality, wc.trc, desc, space)


def pp_scan_brain(space, suffix, extension=".nii.gz"):
    """An output of extract_scan_brain: {trc} an optional entity, {bdesc} desc-brain or
    desc-<desc>brain; ``space`` None for the QC JSON of both grids."""
    return bids(
        OUT,
        subject="{subject}",
        datatype="{modality}",
        trc=entity_wildcard("{trc}"),
        space=space,
        desc="{bdesc}",
        suffix=suffix,
        extension=extension,
    )


def pp_scan(space, extension=".nii.gz"):
    """A PET/SPECT scan of register_modality: {trc} and {desc} hold optional entities."""
    return bids(
        OUT,
        subject="{subject}",
        datatype="{modality}",
        trc=entity_wildcard("{trc}"),
        space=space,
        desc=entity_wildcard("{desc}"),
        suffix="{modality}",
        extension=extension,
    )


def input_qc_figure(subject):
    return bids(
        OUT,
        subject=subject,
        datatype="figures",
        desc="inputqc",
        suffix="T1w",
        extension=".png",
    )


def input_records():
    """The validation records of every input image input_targets() asks for."""
    return [
        ras_image(s, m, ".json")
        for s in SUBJECTS
        for m in ("T1w", "pet", "spect")
        if has_modality(s, m) or m in REQUIRED
    ]


def input_targets():
    targets = [f"{OUT}/inputs/inputs.tsv"]
    for s in SUBJECTS:
        targets.append(input_qc_figure(s))
        for m in ("T1w", "pet", "spect"):
            if has_modality(s, m) or m in REQUIRED:
                targets.append(ras_image(s, m))
    if SOURCE == "demo":
        targets.append(f"{OUT}/demo-bids/participants.tsv")
    return targets


def report_targets():
    return [
        f"{OUT}/provenance/config.resolved.yaml",
        f"{OUT}/provenance/versions.tsv",
        f"{OUT}/provenance/run.json",
        f"{OUT}/dataset_description.json",
        f"{OUT}/.bidsignore",
    ]


_DATASET_SUBJECT_FILES = {}


def dataset_subject_files(dataset):
    """Per subject, the files one slice dataset reads (its study's subject_files; a study that
    leaves the post-surgical subjects out reads nothing of theirs). Made once per dataset: the
    subjects and the configuration do not change while the DAG is built, and the input functions
    of several rules ask for them (1000 subjects: 2 s of the 37 s of `snakemake -n`).
    """
    if dataset not in _DATASET_SUBJECT_FILES:
        _DATASET_SUBJECT_FILES[dataset] = study_subject_files(
            dataset, OUT, SUBJECTS, SIM, config
        )
    return _DATASET_SUBJECT_FILES[dataset]


def dataset_files(wildcards):
    """Every image and levels table the records of one dataset read."""
    files = []
    for subject_files in dataset_subject_files(wildcards.dataset).values():
        files += [str(p) for p in subject_files.values()]
    return sorted(set(files))


def dataset_shards(dataset):
    """Paths of one dataset's outputs (train/val/test shards and the index table)."""
    return CTX.shards(dataset)


def experiment_shards(wildcards):
    shards = dataset_shards(EXPERIMENTS[wildcards.experiment]["dataset"])
    return {"train": shards["train"], "val": shards["val"]}


def experiment_resource(key):
    return lambda wildcards: EXPERIMENTS[wildcards.experiment]["resources"][key]


def family_of(experiment):
    """The model family of an experiment (spectsynth.models.registry.Family): the rules ask it
    what the family does (paired, selection_criteria), never its name."""
    return get_family(EXPERIMENTS[experiment]["model"])


def train_targets():
    """The declared outputs of every enabled experiment (for rule all)."""
    return [f for e in EXPERIMENTS for f in experiment_files(OUT, e).declared]


def used_datasets():
    return sorted({spec["dataset"] for spec in EXPERIMENTS.values()})


def dataset_targets():
    return [dataset_shards(d)["index"] for d in used_datasets()]


def study_outputs(study, outputs):
    """The study's outputs as Snakemake declares them (report() with its caption, directory())."""
    paths = {k: f"{OUT}/evaluate/{study.key}/{o.path}" for k, o in outputs.items()}
    decl = {}
    for k, o in outputs.items():
        if o.directory:
            decl[k] = directory(paths[k])
        elif not o.report:
            decl[k] = paths[k]
        else:
            labels = {"experiment": "{experiment}"} if study.per_experiment else {}
            decl[k] = report(
                paths[k],
                caption=study.caption_path(o.caption, CAPTIONS),
                category=study.report_category,
                subcategory=o.subcategory,
                labels={**labels, o.label[0]: o.label[1]},
            )
    return decl


def evaluation_inputs(study):
    return lambda wc: study.evaluation_inputs(CTX, wc)


def evaluation_params(study):
    """One param per name the study's evaluation reads (the captions may read them too)."""
    return {
        k: (lambda wc, k=k: study.evaluation_params(CTX, wc)[k])
        for k in study.evaluation_param_names
    }


def evaluation_epochs(study):
    """Epochs of the evaluated experiment(s), for the report captions."""
    if study.per_experiment:
        return lambda wc: EXPERIMENTS[wc.experiment]["epochs"]
    return lambda wc: ", ".join(
        f"{e}: {EXPERIMENTS[e]['epochs']}" for e in CTX.experiments_of(study.name)
    )


def all_targets():
    return (
        input_targets()
        + dataset_targets()
        + train_targets()
        + report_targets()
        + [f for stage in TARGETS for f in stage()]
    )


# What the realism table reads (spectsynth.realism; simulate.smk runs it). The paired
# studies' datasets this run builds, the labels of their ROI lines, and every other file.
REALISM_NORMAL_SBR = resolve_simulation(SIM)["dat"]["normal_sbr"]


def realism_shards():
    """The paired studies' datasets this run builds: dataset -> its shards and index."""
    return {
        d: dataset_shards(d) for d in realism_paired_datasets() if d in used_datasets()
    }


def realism_labels():
    """Per subject of a dataset with an ROI line of the data, its label volume (e.g. territories)."""
    shards = realism_shards()
    out = {}
    for dataset, labels in realism_roi_datasets().items():
        if dataset in shards:
            out |= {
                s: bids(OUT, subject=s, datatype="anat", desc=labels, suffix="dseg")
                for s in dataset_subject_files(dataset)
            }
    return out


def realism_inputs(wildcards):
    tracers = resolve_simulation(SIM)["tracers"]
    summary = sim_paths.summary_files(OUT, SIM)
    files = {}
    if "DaT" in tracers:
        files |= {k: summary[k] for k in ("dat", "perfusion", "pet") if k in summary}
    if "perfusion" in tracers:
        files["perfusion_json"] = [
            sim_paths.perfusion_files(OUT, s, SIM)["json"] for s in SUBJECTS
        ]
    if SUBJECTS and sim_paths.scans(OUT, SUBJECTS[0], SIM):
        files["errors"] = f"{OUT}/qc/scan_registration_error.tsv"
    files["shards"] = sorted(f for sh in realism_shards().values() for f in sh.values())
    files["territories"] = sorted(realism_labels().values())
    return files
