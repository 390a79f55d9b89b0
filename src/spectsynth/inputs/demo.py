"""The demo cohort: realistic T1w MRIs of synthetic subjects, built offline.

Every subject starts from the MNI152 2009a head T1 that nilearn ships and gets

* a random smooth non-linear deformation (a cubic B-spline with random control-point
  displacements) plus a random global scaling, so brain, striatum and ventricle volumes
  differ between subjects;
* a random head pose (rotations up to ``max_rotation_deg``, shifts up to ``max_shift_mm``);
* a smooth multiplicative bias field and Rician noise;
* a scanner-like native grid and orientation (sagittal slices, e.g. 1 x 1 x 1.2 mm, stored
  with axis codes P-S-R as many scanners export sagittal T1s).

The true mapping from each subject's scanner space to MNI152 space is kept as an ITK
transform (``.h5``) plus its affine part in JSON, so that later stages can measure their
registration error.  The cohort is deterministic: the same seed gives byte-identical files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from ..io import save_image, write_json
from ..resources import resource_path

log = logging.getLogger(__name__)


@dataclass
class DemoParams:
    """Settings of the demo cohort (mirrors ``inputs.demo`` in the config schema)."""

    n_subjects: int = 12
    seed: int = 42
    voxel_mm: tuple[float, float, float] = (1.0, 1.0, 1.2)  # A-P, S-I, L-R (sagittal slices)
    fov_mm: tuple[float, float, float] = (256.0, 256.0, 192.0)
    max_rotation_deg: float = 15.0
    max_shift_mm: float = 10.0
    deformation_mm: float = 3.0
    control_spacing_mm: float = 25.0
    local_volume_sd: float = 0.2
    field_spacing_mm: float = 4.0
    scale_sd: float = 0.04
    bias_strength: float = 0.15
    noise_fraction: float = 0.02
    age_range: tuple[float, float] = (45.0, 80.0)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: dict) -> DemoParams:
        keys = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in keys}
        return cls(**kwargs)


def subject_labels(n: int) -> list[str]:
    """Labels ``01``, ``02``, ... (zero-padded to at least two digits)."""
    width = max(2, len(str(n)))
    return [f"{i + 1:0{width}d}" for i in range(n)]


# Tissue layers added around the brain (outer distance from the brain surface in mm,
# T1w intensity relative to white matter).  The MNI152 T1 that nilearn ships is skull-
# stripped; a T1w from a scanner is not, and brain extraction must be exercised.
HEAD_LAYERS = (
    (2.0, 0.10),   # CSF and meninges
    (4.0, 0.04),   # inner table of the skull (cortical bone: no signal)
    (6.5, 0.35),   # diploe (fatty marrow)
    (8.5, 0.04),   # outer table
    (11.5, 0.40),  # temporal muscle / galea
    (15.0, 0.85),  # subcutaneous fat (bright on T1w)
    (16.5, 0.45),  # skin
)


def add_head(data: np.ndarray, spacing_mm: float = 1.0) -> np.ndarray:
    """Wrap a skull-stripped T1w in CSF, skull, muscle, fat and skin layers."""
    from scipy import ndimage

    wm = float(np.percentile(data[data > 0], 95))
    brain = ndimage.binary_fill_holes(ndimage.gaussian_filter(data, 1.0) > 0.05 * wm)
    brain = ndimage.binary_closing(brain, iterations=3)
    dist = ndimage.distance_transform_edt(~brain, sampling=spacing_mm)
    head = np.zeros_like(data, dtype=np.float32)
    inner = 0.0
    for outer, rel in HEAD_LAYERS:
        head[(dist > inner) & (dist <= outer)] = rel * wm
        inner = outer
    head = ndimage.gaussian_filter(head, 0.6)
    out = np.where(brain, data, head).astype(np.float32)
    return out


_TEMPLATE_CACHE: dict[str, sitk.Image] = {}


def _load_template() -> sitk.Image:
    """The MNI152 T1 with synthetic head layers, padded so the head fits (cached)."""
    if "t1" not in _TEMPLATE_CACHE:
        img = nib.as_closest_canonical(nib.load(str(resource_path("mni152_t1"))))
        pad = 20
        data = np.pad(np.asarray(img.dataobj, dtype=np.float32), pad)
        aff = img.affine.copy()
        aff[:3, 3] -= aff[:3, :3] @ np.full(3, pad)
        zoom = float(np.mean(img.header.get_zooms()[:3]))
        _TEMPLATE_CACHE["t1"] = _nib_to_sitk(add_head(data, zoom), aff)
    return _TEMPLATE_CACHE["t1"]


def _nib_to_sitk(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """RAS+ NIfTI array/affine -> SimpleITK image (LPS physical space)."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    im = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    im.SetSpacing(tuple(float(s) for s in spacing))
    im.SetOrigin(tuple(float(o) for o in lps[:3, 3]))
    im.SetDirection(tuple(float(d) for d in direction.ravel()))
    return im


def _sitk_affine(im: sitk.Image) -> np.ndarray:
    """The RAS+ NIfTI affine of a SimpleITK image."""
    direction = np.asarray(im.GetDirection()).reshape(3, 3)
    spacing = np.asarray(im.GetSpacing())
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing
    lps[:3, 3] = im.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


# Centres (MNI152 RAS, mm) and radii of the regions whose size is varied on its own:
# lateral ventricles and the left and right striatum.  Each region is scaled by a random
# volume factor through a radial displacement under a Gaussian window.
LOCAL_REGIONS = {
    "ventricles": ((0.0, -10.0, 14.0), 30.0),
    "striatum_L": ((-21.0, 6.0, 3.0), 16.0),
    "striatum_R": ((21.0, 6.0, 3.0), 16.0),
}


def _deformation_field(template: sitk.Image, p: DemoParams, rng: np.random.Generator) -> sitk.Image:
    """Random smooth displacement field (mm, LPS) on a coarse grid over the template.

    The field is a cubic B-spline with random control-point displacements (global smooth
    shape variation) plus radial expansions/contractions of the ventricles and of each
    striatum with random volume factors (``local_volume_sd``), so that these structures
    vary by 10 % or more between subjects, as in real cohorts.
    """
    mesh = [max(1, int(round(sz * sp / p.control_spacing_mm))) for sz, sp in
            zip(template.GetSize(), template.GetSpacing())]
    bspline = sitk.BSplineTransformInitializer(template, mesh, 3)
    bspline.SetParameters(tuple(rng.normal(0.0, p.deformation_mm, size=len(bspline.GetParameters()))))
    size = [int(np.ceil(sz * sp / p.field_spacing_mm)) + 1 for sz, sp in
            zip(template.GetSize(), template.GetSpacing())]
    spacing = [p.field_spacing_mm] * 3
    field = sitk.TransformToDisplacementField(bspline, sitk.sitkVectorFloat64, size,
                                              template.GetOrigin(), spacing, template.GetDirection())
    disp = sitk.GetArrayFromImage(field)  # (z, y, x, 3), LPS mm
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), axis=-1)
    direction = np.asarray(template.GetDirection()).reshape(3, 3)
    pts = np.asarray(template.GetOrigin()) + (idx * spacing) @ direction.T  # (x, y, z, 3) LPS
    pts = pts.transpose(2, 1, 0, 3)
    for _, (centre_ras, radius) in LOCAL_REGIONS.items():
        centre = np.asarray(centre_ras) * np.array([-1.0, -1.0, 1.0])
        vol = float(np.clip(rng.normal(0.0, p.local_volume_sd), -0.4, 0.4))
        k = 1.0 - (1.0 + vol) ** (-1.0 / 3.0)  # subject volume = template volume / (1-k)^3
        rel = pts - centre
        w = np.exp(-np.sum(rel**2, axis=-1) / (2.0 * radius**2))[..., None]
        disp = disp - k * rel * w
    out = sitk.GetImageFromArray(disp, isVector=True)
    out.CopyInformation(field)
    return out


def native_grid(p: DemoParams, centre_ras: np.ndarray) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and RAS affine of the sagittal scanner grid (axis codes P, S, R)."""
    vox = np.asarray(p.voxel_mm, dtype=float)  # sizes along A-P, S-I, L-R
    fov = np.asarray(p.fov_mm, dtype=float)
    shape = tuple(int(round(f / v)) for f, v in zip(fov, vox))
    # voxel axes: i -> posterior, j -> superior, k -> right
    axes = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]).T  # columns in RAS
    aff = np.eye(4)
    aff[:3, :3] = axes * vox
    centre_vox = (np.asarray(shape) - 1) / 2.0
    aff[:3, 3] = centre_ras - aff[:3, :3] @ centre_vox
    return shape, aff


@dataclass
class DemoSubject:
    label: str
    image: nib.Nifti1Image
    truth: dict
    transform: sitk.Transform  # maps subject scanner (LPS) points to MNI152 (LPS) points
    pose: sitk.AffineTransform  # first part of ``transform``
    field: sitk.Image  # displacement field (LPS mm) on a grid in MNI152 space, second part
    age: float
    sex: str


def make_subject(index: int, p: DemoParams, template: sitk.Image | None = None) -> DemoSubject:
    """Build demo subject number ``index`` (0-based), deterministic from ``p.seed``."""
    if template is None:
        template = _load_template()
    rng = np.random.default_rng([p.seed, index])
    label = subject_labels(p.n_subjects)[index]

    # --- pose (subject scanner space -> template space), in LPS as ITK wants it ---------
    angles = np.deg2rad(rng.uniform(-p.max_rotation_deg, p.max_rotation_deg, size=3))
    shift = rng.uniform(-p.max_shift_mm, p.max_shift_mm, size=3)
    scales = np.exp(rng.normal(0.0, p.scale_sd, size=3))
    rot = _rotation(*angles)
    centre_lps = np.asarray(template.TransformContinuousIndexToPhysicalPoint(
        [(s - 1) / 2.0 for s in template.GetSize()]))
    pose = sitk.AffineTransform(3)
    pose.SetCenter(tuple(centre_lps))
    # subject -> template: undo the subject's head size and pose.
    pose.SetMatrix(tuple((rot @ np.diag(1.0 / scales)).ravel()))
    pose.SetTranslation(tuple(shift))

    # --- smooth non-linear deformation in template space ----------------------------------
    field = _deformation_field(template, p, rng)
    true_tx = sitk.CompositeTransform([sitk.DisplacementFieldTransform(sitk.Image(field)), pose])
    # (pose applied first, then the deformation)

    # --- scanner grid ----------------------------------------------------------------------
    # Centre the field of view on where the template's head centre lands in scanner space.
    inv_pose = pose.GetInverse()
    centre_sub_lps = np.asarray(inv_pose.TransformPoint(tuple(centre_lps)))
    centre_sub_ras = centre_sub_lps * np.array([-1.0, -1.0, 1.0])
    shape, aff = native_grid(p, centre_sub_ras)
    ref = _nib_to_sitk(np.zeros(shape, dtype=np.float32), aff)
    moved = sitk.Resample(template, ref, true_tx, sitk.sitkBSpline, 0.0, sitk.sitkFloat32)
    data = sitk.GetArrayFromImage(moved).transpose(2, 1, 0).astype(np.float64)
    data = np.clip(data, 0.0, None)

    # --- bias field and Rician noise ------------------------------------------------------
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    coef = rng.normal(0.0, 1.0, size=(3, 3))
    log_bias = sum(coef[a, 0] * grid[a] + coef[a, 1] * (grid[a] ** 2 - 1 / 3)
                   + coef[a, 2] * grid[a] * grid[(a + 1) % 3] for a in range(3))
    log_bias *= p.bias_strength / max(float(np.abs(log_bias).max()), 1e-6)
    data *= np.exp(log_bias)
    sigma = p.noise_fraction * float(np.percentile(data[data > 0], 95)) if np.any(data > 0) else 1.0
    n1 = rng.normal(0.0, sigma, size=shape)
    n2 = rng.normal(0.0, sigma, size=shape)
    data = np.sqrt((data + n1) ** 2 + n2 ** 2)
    scale = 1000.0 / max(float(np.percentile(data, 99.5)), 1e-6)
    data = np.clip(np.round(data * scale), 0, 32767).astype(np.int16)

    img = nib.Nifti1Image(data, aff)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    img.header.set_xyzt_units("mm", "sec")

    pose_ras = _lps_affine_to_ras(pose)
    truth = {
        "subject": label,
        "seed": [p.seed, index],
        "rotation_deg": np.rad2deg(angles).round(4).tolist(),
        "shift_mm": shift.round(4).tolist(),
        "scales": scales.round(5).tolist(),
        "deformation_sd_mm": p.deformation_mm,
        "control_spacing_mm": p.control_spacing_mm,
        "affine_subject_to_mni_ras": pose_ras.round(6).tolist(),
        "note": "The full mapping from subject scanner points to MNI152 points (ITK, LPS) is the "
                "affine in the _desc-pose_xfm.tfm file followed by the displacement field in the "
                "_desc-deformation_xfm.nii.gz file; spectsynth.inputs.demo.load_true_transform "
                "composes them.",
    }
    age, sex = demographics(index, p)
    return DemoSubject(label, img, truth, true_tx, pose, field, age, sex)


def demographics(index: int, p: DemoParams) -> tuple[float, str]:
    """Age and sex of demo subject ``index`` (its own random stream, independent of the image)."""
    rng = np.random.default_rng([p.seed, index, 1])
    age = float(np.round(rng.uniform(*p.age_range), 1))
    sex = str(rng.choice(["F", "M"]))
    return age, sex


def _lps_affine_to_ras(tx: sitk.AffineTransform) -> np.ndarray:
    """4x4 RAS matrix of an ITK affine transform (which works in LPS)."""
    m = np.asarray(tx.GetMatrix()).reshape(3, 3)
    c = np.asarray(tx.GetCenter())
    t = np.asarray(tx.GetTranslation())
    lps = np.eye(4)
    lps[:3, :3] = m
    lps[:3, 3] = t + c - m @ c
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    return flip @ lps @ flip


def write_subject(subj: DemoSubject, bids_root: str | Path) -> dict[str, Path]:
    """Write one subject into a BIDS dataset; return the written paths."""
    root = Path(bids_root)
    anat = root / f"sub-{subj.label}" / "anat"
    t1 = save_image(subj.image, anat / f"sub-{subj.label}_T1w.nii.gz")
    zooms = [float(z) for z in subj.image.header.get_zooms()[:3]]
    sidecar = write_json({
        "Modality": "MR",
        "MRAcquisitionType": "3D",
        "SliceOrientation": "sagittal",
        "Manufacturer": "spectsynth demo (simulated)",
        "MagneticFieldStrength": 3,
        "VoxelSizeMM": zooms,
        "GeneratedBy": "spectsynth.inputs.demo",
    }, anat / f"sub-{subj.label}_T1w.json")
    paths = truth_paths(root, subj.label)
    paths["pose"].parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteTransform(subj.pose, str(paths["pose"]))
    # A displacement-field image (ITK convention, LPS mm) is byte-reproducible, unlike HDF5.
    field = nib.Nifti1Image(
        sitk.GetArrayFromImage(subj.field).transpose(2, 1, 0, 3)[:, :, :, None, :].astype(np.float32),
        _sitk_affine(subj.field))
    field.header.set_intent("vector")
    save_image(field, paths["deformation"])
    js = write_json(subj.truth, paths["truth"])
    return {"T1w": t1, "sidecar": sidecar, "pose": paths["pose"],
            "deformation": paths["deformation"], "truth": js}


def truth_paths(bids_root: str | Path, label: str) -> dict[str, Path]:
    """Where the true transform of demo subject ``label`` is stored."""
    d = Path(bids_root) / "derivatives" / "groundtruth" / f"sub-{label}" / "xfm"
    stem = f"sub-{label}_from-T1w_to-MNI152"
    return {"pose": d / f"{stem}_desc-pose_xfm.tfm",
            "deformation": d / f"{stem}_desc-deformation_xfm.nii.gz",
            "truth": d / f"{stem}_xfm.json"}


def load_true_transform(bids_root: str | Path, label: str) -> sitk.Transform:
    """The true subject-to-MNI152 transform of a demo subject (ITK: maps LPS points)."""
    paths = truth_paths(bids_root, label)
    pose = sitk.ReadTransform(str(paths["pose"]))
    field = sitk.ReadImage(str(paths["deformation"]), sitk.sitkVectorFloat64)
    return sitk.CompositeTransform([sitk.DisplacementFieldTransform(field), pose])


def write_dataset_files(p: DemoParams, bids_root: str | Path) -> dict[str, Path]:
    """Write the dataset-level BIDS files (description, participants table)."""
    root = Path(bids_root)
    root.mkdir(parents=True, exist_ok=True)
    desc = write_json({
        "Name": "spectsynth demo cohort (simulated T1w MRIs from the MNI152 template)",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "License": "Derived from the MNI ICBM152 2009a template (free use with acknowledgement)",
        "GeneratedBy": [{"Name": "spectsynth", "Description": f"demo cohort, seed {p.seed}"}],
    }, root / "dataset_description.json")
    (root / "derivatives" / "groundtruth").mkdir(parents=True, exist_ok=True)
    write_json({
        "Name": "true subject-to-MNI152 transforms of the demo cohort",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "spectsynth"}],
    }, root / "derivatives" / "groundtruth" / "dataset_description.json")
    rows = ["participant_id\tage\tsex"]
    for i, label in enumerate(subject_labels(p.n_subjects)):
        age, sex = demographics(i, p)
        rows.append(f"sub-{label}\t{age}\t{sex}")
    tsv = root / "participants.tsv"
    tsv.write_text("\n".join(rows) + "\n")
    pj = write_json({
        "age": {"Description": "age of the simulated participant", "Units": "years"},
        "sex": {"Description": "sex of the simulated participant",
                "Levels": {"F": "female", "M": "male"}},
    }, root / "participants.json")
    return {"description": desc, "participants": tsv, "participants_json": pj}



def build_subject(index: int, demo_cfg: dict, bids_root: str | Path) -> dict[str, Path]:
    """Make demo subject ``index`` from the ``inputs.demo`` config section and write it."""
    p = DemoParams.from_config(demo_cfg)
    if not 0 <= index < p.n_subjects:
        raise ValueError(f"demo subject index {index} outside 0..{p.n_subjects - 1}")
    subj = make_subject(index, p)
    log.info("demo subject %s: rotation %s deg, shift %s mm, scales %s", subj.label,
             subj.truth["rotation_deg"], subj.truth["shift_mm"], subj.truth["scales"])
    return write_subject(subj, bids_root)


def build_dataset_files(demo_cfg: dict, bids_root: str | Path) -> dict[str, Path]:
    """Dataset-level BIDS files of the demo cohort from the ``inputs.demo`` config section."""
    return write_dataset_files(DemoParams.from_config(demo_cfg), bids_root)


def registration_error(bids_root: str | Path, label: str, estimated_xfm: str | Path,
                       template_mask: str | Path, n_points: int = 4000) -> dict:
    """Error of an estimated T1w->MNI152 registration of a demo subject, in mm.

    ``estimated_xfm`` follows the ITK resampling convention of the workflow's
    ``from-T1w_to-MNI152_mode-image`` files (it maps MNI152 points to subject points);
    the true transform maps subject points to MNI152 points.  For points ``q`` spread over
    the brain mask in MNI152 space the error is ``|true(estimated(q)) - q|``: how far the
    anatomy the registration put at ``q`` really lies from it.  It includes the subject's
    non-linear deformation that an affine registration cannot undo (the residual an
    affine method leaves on this cohort).
    """
    true_tx = load_true_transform(bids_root, label)
    est = sitk.ReadTransform(str(estimated_xfm))
    mask = nib.load(str(template_mask))
    idx = np.argwhere(np.asanyarray(mask.dataobj) > 0)
    if len(idx) == 0:
        raise ValueError(f"subject {label}: template-space brain mask {template_mask} is empty")
    step = max(1, len(idx) // n_points)
    idx = idx[::step]
    ras = nib.affines.apply_affine(mask.affine, idx)
    lps = ras * np.array([-1.0, -1.0, 1.0])
    err = np.array([np.linalg.norm(np.asarray(true_tx.TransformPoint(est.TransformPoint(tuple(q))))
                                   - q) for q in lps])
    return {"subject": label, "n_points": int(len(err)), "mean_mm": round(float(err.mean()), 3),
            "median_mm": round(float(np.median(err)), 3),
            "p95_mm": round(float(np.percentile(err, 95)), 3),
            "max_mm": round(float(err.max()), 3)}


def registration_error_table(bids_root: str | Path, labels: list[str], xfms: list[str | Path],
                             masks: list[str | Path], out_tsv: str | Path) -> Path:
    """:func:`registration_error` of every demo subject as one TSV."""
    import pandas as pd

    rows = [registration_error(bids_root, s, x, m) for s, x, m in zip(labels, xfms, masks)]
    df = pd.DataFrame(rows)
    out_tsv = Path(out_tsv)
    out_tsv.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_tsv, sep="\t", index=False)
    log.info("registration error over %d demo subjects: mean %.2f mm (per subject %s)", len(df),
             df["mean_mm"].mean(), ", ".join(f"{v:.2f}" for v in df["mean_mm"]))
    return out_tsv
