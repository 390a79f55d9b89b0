"""Where S0 looks: the slice and the striatal regions, taken from the subject's anatomy.

Nothing here reads the original (the prediction's target): the axial slice of a subject is
the one with the most striatal voxels of its T1w striatum labels (``anat/sub-X_desc-striatum_dseg``,
resampled to the DaT grid), and the regions whose binding ratios are compared are the same
labels cut at that slice, at the dataset's slice size.  So the slice and the regions do not
move when the target changes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...errors import EvaluationError, InputDataError
from ...labels import STRIATUM


def striatum_on_grid(striatum_path: str, grid_path: str, *, subject: str) -> np.ndarray:
    """The striatum labels (integer, :data:`spectsynth.labels.STRIATUM`) resampled by nearest
    neighbour onto the RAS grid of ``grid_path`` (volume 0 of a 4-D stack such as the DaT stack)."""
    from nibabel.processing import resample_from_to

    from ...io import load_image, load_stack_volume

    grid = load_stack_volume(grid_path, 0, subject=subject)
    labels = load_image(striatum_path, subject=subject, check_values=False)
    out = resample_from_to(labels, (grid.shape[:3], grid.affine), order=0, mode="constant", cval=0)
    return np.rint(np.asarray(out.dataobj)).astype(np.int16)


def anatomical_slice(labels: np.ndarray, *, subject: str | None = None) -> int:
    """Index of the axial slice (axis 2, RAS) holding the most striatal voxels of ``labels``."""
    lab = np.asarray(labels)
    if lab.ndim != 3:
        raise InputDataError(f"expected a 3-D label volume, got shape {lab.shape}", subject=subject)
    counts = (lab > 0).sum(axis=(0, 1))
    if counts.max() == 0:
        raise InputDataError("the striatum labels are empty on the DaT grid", subject=subject,
                             hint="Check the anatomy stage's striatum segmentation and the DaT grid")
    return int(np.argmax(counts))


def label_slice(labels: np.ndarray, z: int, size: int) -> np.ndarray:
    """Axial slice ``z`` of a label volume in the dataset's stored orientation and size
    (:func:`spectsynth.datasets.resize_slice` applied to each label's mask, the label with the
    largest share wins; below one half of a pixel: background)."""
    from ...datasets import axial_slice, resize_slice

    sl = axial_slice(np.asarray(labels), int(z))
    values = [v for v in STRIATUM if (sl == v).any()]
    if not values:
        return np.zeros((size, size), dtype=np.int16)
    shares = np.stack([resize_slice((sl == v).astype(np.float32), size) for v in values])
    best = np.argmax(shares, axis=0)
    out = np.asarray(values, dtype=np.int16)[best]
    out[shares.max(axis=0) < 0.5] = 0
    return out


def side_segmentation(labels_slice: np.ndarray) -> np.ndarray:
    """Striatum labels of one slice -> 1 (left: caudate_L, putamen_L), 2 (right), 0 elsewhere,
    the segmentation :func:`slice_binding_ratios` reads."""
    lab = np.asarray(labels_slice)
    out = np.zeros(lab.shape, dtype=np.int16)
    for value, name in STRIATUM.items():
        out[lab == value] = 1 if name.endswith("_L") else 2
    return out


def subject_label_slices(table, striatum: Mapping[str, str], size: int, *, experiment: str) -> list[np.ndarray]:
    """Per row of a dataset/prediction table: the side segmentation (RAS, ``size`` x ``size``)
    of the subject's striatum labels at the row's ``slice_index`` on the grid of its ``source``."""
    from ...datasets import shard_to_ras

    cache: dict[str, np.ndarray] = {}
    out = []
    for _, row in table.iterrows():
        subject = str(row["subject"])
        if subject not in striatum:
            raise EvaluationError(f"no striatum labels given for subject {subject}", experiment=experiment,
                                  subject=subject, hint="The workflow passes every subject's anatomy")
        if subject not in cache:
            src = str(row["source"])
            path = src.rsplit("[", 1)[0] if src.endswith("]") else src
            cache[subject] = striatum_on_grid(striatum[subject], path, subject=subject)
        sl = label_slice(cache[subject], int(row["slice_index"]), size)
        out.append(shard_to_ras(side_segmentation(sl)))
    return out


def slice_binding_ratios(image_ras: np.ndarray, segmentation: np.ndarray, *, experiment: str,
                         subject: str | None = None, background_fraction: float = 0.1) -> dict[str, float]:
    """Slice-level binding ratio per hemisphere: ``mean(region) / background - 1``.

    ``segmentation`` is a :func:`spectsynth.metrics.segment_basal_ganglia` label slice
    (1 left, 2 right); the background is the median of the slice's pixels above
    ``background_fraction`` of its maximum outside the segmentation (the brain background
    S0's dataset normalisation uses).  A 2-D stand-in for the volumetric SBR of
    :mod:`spectsynth.quant`, which needs the anatomical label volumes.
    """
    img = np.asarray(image_ras, dtype=np.float64)
    seg = np.asarray(segmentation)
    if img.shape != seg.shape:
        raise EvaluationError(f"image {img.shape} and segmentation {seg.shape} differ in shape",
                              experiment=experiment, subject=subject)
    mx = float(img.max())
    outside = (img > background_fraction * mx) & (seg == 0)
    if mx <= 0 or not outside.any():
        raise EvaluationError("the slice has no background signal to normalise by",
                              experiment=experiment, subject=subject,
                              hint="Check the slice (blank prediction?)")
    bkg = float(np.median(img[outside]))
    if bkg <= 0:
        raise EvaluationError(f"background {bkg:.4g} is not positive", experiment=experiment,
                              subject=subject)
    out = {}
    for value, side in ((1, "L"), (2, "R")):
        region = seg == value
        if not region.any():
            raise EvaluationError(f"no {side} basal-ganglia pixel in the segmentation",
                                  experiment=experiment, subject=subject)
        out[side] = float(img[region].mean()) / bkg - 1.0
    return out
