"""Scanner frames: every simulated PET/SPECT written as a scanner would write it.

The simulator images a subject on a camera grid that lies in the T1w's world space.  A real
scan does not: the head lies in the scanner with its own pose, the reconstruction has its own
matrix and voxel size, and the axial field of view may cut off the vertex or the cerebellum.
:func:`to_scanner_frame` moves the simulated image into such a frame:

* the *pose* is a random rigid motion of the head (rotations about the three axes drawn
  uniformly in +-``rotation_deg``, a shift in +-``shift_mm`` per axis), seeded per subject and
  scan, so every scan of a subject lies differently and differently from the T1w;
* the *scanner world* has its isocentre at the centre of the field of view; the head centre
  (the centre of the brain's bounding box) sits at the drawn shift from it;
* the *camera* is one of ``frames.spect`` / ``frames.pet`` (S2's Table 1: three SPECT and two
  PET reconstruction geometries), drawn once per subject and modality;
* the head *moves* once during the scan (``frames.motion``): a small rigid motion for the last
  part of the counts, so the image is the sum of two positions, as in a patient who shifts on
  the table; the recorded pose is the position held for most of the scan;
* the written affine is the scanner's own (axis-aligned voxels in scanner coordinates): it
  says nothing about where the T1w is, so the pipeline has to register the scan, as for real
  data.

The true pose is kept in the image's JSON sidecar (``SimulationTruth``): the 4x4 RAS matrix
``t1w_to_scanner`` (T1w world point -> scanner world point).  In the ITK resampling convention
of the workflow's ``from-<modality>_to-T1w`` transforms (T1w points -> scan points) this is the
true transform itself, so :func:`registration_error` compares the two directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from ..errors import ConfigError, InputDataError
from ..io import save_image, write_json
from .design import rng_for


def check(cfg: Mapping) -> None:
    """Refuse a ``simulate.frames`` section that cannot describe a scanner (ConfigError)."""
    for key, hi in (("rotation_deg", 45.0), ("shift_mm", 100.0)):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= hi:
            raise ConfigError(f"simulate.frames.{key} = {v!r} must be a number in [0, {hi:g}]")
    for mod in ("spect", "pet"):
        cams = cfg[mod]
        if not isinstance(cams, (list, tuple)) or not cams:
            raise ConfigError(f"simulate.frames.{mod} must be a non-empty list of cameras, each "
                              "{matrix: [nx, ny, nz], voxel_mm: [dx, dy, dz]}")
        for i, cam in enumerate(cams):
            where = f"simulate.frames.{mod}[{i}]"
            if not isinstance(cam, Mapping) or set(cam) != {"matrix", "voxel_mm"}:
                raise ConfigError(f"{where} must have exactly the keys matrix and voxel_mm, got {cam!r}")
            m, v = cam["matrix"], cam["voxel_mm"]
            if (not isinstance(m, (list, tuple)) or len(m) != 3
                    or any(isinstance(x, bool) or not isinstance(x, int) or not 4 <= x <= 1024 for x in m)):
                raise ConfigError(f"{where}.matrix = {m!r} must be three integers in [4, 1024]")
            if (not isinstance(v, (list, tuple)) or len(v) != 3
                    or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not 0.2 <= x <= 20 for x in v)):
                raise ConfigError(f"{where}.voxel_mm = {v!r} must be three numbers in [0.2, 20] mm")
    mo = cfg["motion"]
    for key, hi in (("rotation_deg", 20.0), ("shift_mm", 50.0)):
        v = mo[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= hi:
            raise ConfigError(f"simulate.frames.motion.{key} = {v!r} must be a number in [0, {hi:g}]")
    fr = mo["moved_fraction"]
    if (not isinstance(fr, (list, tuple)) or len(fr) != 2
            or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in fr) or not 0 <= fr[0] <= fr[1] < 1):
        raise ConfigError(f"simulate.frames.motion.moved_fraction = {fr!r} must be [min, max] with "
                          "0 <= min <= max < 1 (the share of the scan after the head moved)")


def draw_camera(frames_cfg: Mapping, modality: str, seed: int, subject: str) -> dict:
    """The subject's camera of ``modality``: one of ``frames.<modality>``, drawn per subject.

    Every scan of that modality of the subject uses it (its own stream: seed, subject,
    ``camera-<modality>``), as a patient's scans come from the scanner of their centre and year.
    """
    cams = list(frames_cfg[modality])
    i = int(rng_for(seed, subject, f"camera-{modality}", 0).integers(len(cams))) if len(cams) > 1 else 0
    return {"index": i, "matrix": tuple(int(v) for v in cams[i]["matrix"]),
            "voxel_mm": tuple(float(v) for v in cams[i]["voxel_mm"])}


def rotation_matrix(angles_deg: Sequence[float]) -> np.ndarray:
    """Rotation about x (pitch), then y (roll), then z (yaw); angles in degrees."""
    rx, ry, rz = np.deg2rad(np.asarray(angles_deg, float))
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


@dataclass(frozen=True)
class Pose:
    """A head pose in the scanner: ``scanner = R (t1w - centre) + shift`` (RAS mm)."""

    rotation_deg: tuple[float, float, float]
    shift_mm: tuple[float, float, float]
    centre_mm: tuple[float, float, float]

    @property
    def matrix(self) -> np.ndarray:
        """4x4 RAS matrix: T1w world point -> scanner world point."""
        r = rotation_matrix(self.rotation_deg)
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = np.asarray(self.shift_mm) - r @ np.asarray(self.centre_mm)
        return m

    def record(self) -> dict:
        return {"rotation_deg": [round(float(v), 4) for v in self.rotation_deg],
                "shift_mm": [round(float(v), 4) for v in self.shift_mm],
                "centre_mm": [round(float(v), 4) for v in self.centre_mm],
                "t1w_to_scanner": np.round(self.matrix, 8).tolist()}


def draw_pose(seed: int, subject: str, scan: str, centre_mm: Sequence[float], rotation_deg: float,
              shift_mm: float) -> Pose:
    """The seeded random pose of one scan (its own stream: seed, subject, ``pose-<scan>``)."""
    rng = rng_for(seed, subject, f"pose-{scan}", 0)
    rot = rng.uniform(-rotation_deg, rotation_deg, 3)
    shift = rng.uniform(-shift_mm, shift_mm, 3)
    return Pose(tuple(float(v) for v in rot), tuple(float(v) for v in shift),
                tuple(float(v) for v in np.round(np.asarray(centre_mm, float), 3)))


def scanner_affine(matrix: Sequence[int], voxel_mm: Sequence[float]) -> np.ndarray:
    """The scanner's voxel-to-scanner-world affine: RAS axes, field of view centred on 0."""
    n, v = np.asarray(matrix, float), np.asarray(voxel_mm, float)
    a = np.diag([*v, 1.0])
    a[:3, 3] = -(n - 1) / 2.0 * v
    return a


def resample_into_frame(volume: np.ndarray, src_affine: np.ndarray, pose: Pose, matrix: Sequence[int],
                        voxel_mm: Sequence[float], *, order: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A T1w-world volume as the scanner records it: (data on the scanner matrix, its affine)."""
    dst = scanner_affine(matrix, voxel_mm)
    m = np.linalg.inv(np.asarray(src_affine, float)) @ np.linalg.inv(pose.matrix) @ dst
    out = ndimage.affine_transform(np.asarray(volume, np.float32), m[:3, :3], offset=m[:3, 3],
                                   output_shape=tuple(int(x) for x in matrix), order=order, mode="constant",
                                   cval=0.0, prefilter=False)
    return np.clip(out, 0.0, None).astype(np.float32), dst


def brain_in_fov(brain: np.ndarray, brain_affine: np.ndarray, pose: Pose, matrix: Sequence[int],
                 voxel_mm: Sequence[float]) -> dict:
    """Share of the brain (mask on its T1w grid) inside the scanner's field of view.

    Also the shares cut off above (vertex) and below (cerebellum, brainstem) the axial field of
    view, and outside it in-plane.
    """
    idx = np.argwhere(np.asarray(brain) > 0)
    if idx.size == 0:
        raise InputDataError("the brain mask is empty, so the field of view cannot be checked",
                             hint="Check the anatomy stage's brain mask of this subject")
    world = nib.affines.apply_affine(np.asarray(brain_affine, float), idx)
    vox = nib.affines.apply_affine(np.linalg.inv(scanner_affine(matrix, voxel_mm)) @ pose.matrix, world)
    n = np.asarray(matrix, float)
    inside_xy = np.all((vox[:, :2] >= -0.5) & (vox[:, :2] <= n[:2] - 0.5), axis=1)
    above, below = vox[:, 2] > n[2] - 0.5, vox[:, 2] < -0.5
    inside = inside_xy & ~above & ~below
    total = float(len(idx))
    return {"brain_in_fov": round(float(inside.sum()) / total, 5),
            "brain_cut_superior": round(float(above.sum()) / total, 5),
            "brain_cut_inferior": round(float(below.sum()) / total, 5),
            "brain_cut_inplane": round(float((~inside_xy & ~above & ~below).sum()) / total, 5)}


@dataclass
class ScannerScan:
    """One scan in its scanner frame: image, pose and field-of-view record."""

    image: nib.Nifti1Image
    pose: Pose
    fov: dict
    matrix: tuple[int, int, int]
    voxel_mm: tuple[float, float, float]
    camera: int = 0
    motion: Motion | None = None

    def sidecar(self, *, subject: str, scan: str, modality: str, tracer: str, units: str,
                source_grid: dict | None = None) -> dict:
        return {
            "Modality": "PT" if modality == "pet" else "NM", "TracerName": tracer, "Units": units,
            "ImageDecayCorrected": True, "ReconMatrixSize": list(self.matrix),
            "VoxelSizeMM": [float(v) for v in self.voxel_mm],
            "FieldOfViewMM": [round(float(n * v), 2) for n, v in zip(self.matrix, self.voxel_mm)],
            "GeneratedBy": "spectsynth.simulate (scanner frame)",
            "SimulationTruth": {"subject": subject, "scan": scan, "pose": self.pose.record(),
                                "camera": self.camera,
                                "motion": self.motion.record() if self.motion is not None else None,
                                "field_of_view": self.fov, "camera_grid": source_grid,
                                "transform_convention": (
                                    "t1w_to_scanner maps T1w world points (RAS mm) to scanner world "
                                    "points: it equals the ITK from-<modality>_to-T1w transform that a "
                                    "perfect registration would find")}}


@dataclass(frozen=True)
class Motion:
    """Head motion during the scan: the head at the scan's pose, then moved by a small rigid
    motion for the last ``fraction`` of the counts."""

    rotation_deg: tuple[float, float, float]
    shift_mm: tuple[float, float, float]
    fraction: float

    def record(self) -> dict:
        return {"rotation_deg": [round(float(v), 4) for v in self.rotation_deg],
                "shift_mm": [round(float(v), 4) for v in self.shift_mm], "moved_fraction": round(self.fraction, 4)}


def draw_motion(seed: int, subject: str, scan: str, motion_cfg: Mapping) -> Motion | None:
    """The seeded head motion of one scan (stream: seed, subject, ``motion-<scan>``); None if off."""
    rot, shift = float(motion_cfg["rotation_deg"]), float(motion_cfg["shift_mm"])
    if rot <= 0 and shift <= 0:
        return None
    rng = rng_for(seed, subject, f"motion-{scan}", 0)
    r = rng.uniform(-rot, rot, 3)
    t = rng.uniform(-shift, shift, 3)
    lo, hi = (float(v) for v in motion_cfg["moved_fraction"])
    return Motion(tuple(float(v) for v in r), tuple(float(v) for v in t), float(rng.uniform(lo, hi)))


def to_scanner_frame(volume: np.ndarray, affine: np.ndarray, brain: np.ndarray, brain_affine: np.ndarray,
                     *, frames_cfg: Mapping, modality: str, seed: int, subject: str, scan: str,
                     centre_mm: Sequence[float]) -> ScannerScan:
    """Move a T1w-world volume (e.g. a camera-grid image) into a seeded random scanner frame.

    The frame is the subject's camera (:func:`draw_camera`); the head lies at the scan's pose
    and, with ``frames.motion``, moves once during the scan: the image is the count-weighted
    sum of the two positions.  The recorded pose (the truth a registration is measured
    against) is the position the head held for most of the scan.
    """
    cam = draw_camera(frames_cfg, modality, seed, subject)
    matrix, voxel = cam["matrix"], cam["voxel_mm"]
    pose = draw_pose(seed, subject, scan, centre_mm, float(frames_cfg["rotation_deg"]),
                     float(frames_cfg["shift_mm"]))
    data, aff = resample_into_frame(volume, affine, pose, matrix, voxel)
    motion = draw_motion(seed, subject, scan, frames_cfg["motion"]) if "motion" in frames_cfg else None
    if motion is not None:
        # the second position: the pose's angles and shift changed by the motion's
        moved_shift = tuple(float(v) for v in np.asarray(pose.shift_mm) + np.asarray(motion.shift_mm))
        moved = Pose(tuple(float(v) for v in (np.asarray(pose.rotation_deg) + np.asarray(motion.rotation_deg))),
                     moved_shift, pose.centre_mm)
        after, _ = resample_into_frame(volume, affine, moved, matrix, voxel)
        data = ((1.0 - motion.fraction) * data + motion.fraction * after).astype(np.float32)
    img = nib.Nifti1Image(data, aff)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = f"spectsynth {scan} scanner frame"[:80]
    return ScannerScan(img, pose, brain_in_fov(brain, brain_affine, pose, matrix, voxel), matrix, voxel,
                       camera=cam["index"], motion=motion)


def write_scan(frame: ScannerScan, nifti_path: str | Path, json_path: str | Path, **sidecar) -> None:
    """The scan's NIfTI and its JSON sidecar (keyword arguments of :meth:`ScannerScan.sidecar`)."""
    save_image(frame.image, nifti_path)
    write_json(frame.sidecar(**sidecar), json_path)


# --------------------------------------------------------------------------------------------
# truth read back, registration error
# --------------------------------------------------------------------------------------------
def read_truth(json_path: str | Path) -> dict:
    """The ``SimulationTruth`` block of a scanner-frame sidecar (pose, field of view)."""
    path = Path(json_path)
    if not path.exists():
        raise InputDataError("scanner-frame sidecar does not exist", path=path,
                             hint="Run the simulation rules of this subject first")
    meta = json.loads(path.read_text())
    if "SimulationTruth" not in meta:
        raise InputDataError("sidecar has no SimulationTruth block (not a simulated scan)", path=path,
                             hint="Registration errors can only be measured for simulated scans")
    return meta["SimulationTruth"]


def pose_magnitude(pose_record: Mapping, brain_mask: str | Path, n_points: int = 4000) -> float:
    """Mean displacement (mm) of the brain's points by the pose's rotation and shift alone.

    The size of the misalignment a registration has to undo (the pose about the head centre;
    the offset between the scanner's and the T1w's world origins is not counted).
    """
    mask = nib.load(str(brain_mask))
    idx = np.argwhere(np.asanyarray(mask.dataobj) > 0)
    idx = idx[:: max(1, len(idx) // n_points)]
    ras = nib.affines.apply_affine(mask.affine, idx)
    c = np.asarray(pose_record["centre_mm"], float)
    moved = (ras - c) @ rotation_matrix(pose_record["rotation_deg"]).T + np.asarray(pose_record["shift_mm"])
    return round(float(np.linalg.norm(moved - (ras - c), axis=1).mean()), 3)
