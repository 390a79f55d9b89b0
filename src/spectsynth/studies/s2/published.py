"""S2's published values (Table 4, the native-vs-template comparison).

Every number is copied from the paper named in ``source`` (see :mod:`spectsynth.studies.published`)."""

from __future__ import annotations

from collections.abc import Mapping


def _t4(space: str, loss: str, values: Mapping[str, tuple[tuple[float, float], ...]]) -> list[dict]:
    """S2 Table 4 rows: ``values[input] = ((rmse, cv), (ssim, cv), (psnr, cv))``."""
    out = []
    for inp, cells in values.items():
        for metric, (mean, cv) in zip(("rmse", "ssim", "psnr"), cells, strict=True):
            out.append({"space": space, "loss": loss, "input": inp, "metric": metric, "mean": mean,
                        "cv_percent": cv})
    return out


PUBLISHED = {
    "source": "Shokraei Fard et al., Front Neurol 2024, Table 4 (mean and coefficient of variation)",
    "scale": "S2 paper scale: 48 patients, 1,100 test slices",
    # loss tokens as in the experiment specs: l1 = 1-norm + cross-entropy, l1+ssim = + SSIM
    "table4": tuple(
        _t4("template", "l1", {"mri": ((0.13, 38.46), (0.82, 6.10), (24.53, 11.01)),
                               "pet": ((0.12, 33.33), (0.83, 6.02), (25.12, 9.87)),
                               "mri+pet": ((0.13, 30.77), (0.83, 6.02), (24.39, 8.69))})
        + _t4("template", "l1+ssim", {"mri": ((0.14, 35.71), (0.83, 6.02), (23.72, 9.65)),
                                      "pet": ((0.12, 33.33), (0.82, 6.10), (24.76, 9.13)),
                                      "mri+pet": ((0.13, 30.77), (0.83, 6.02), (24.27, 8.49))})
        + _t4("native", "l1", {"mri": ((0.10, 30.00), (0.87, 5.75), (26.28, 9.74)),
                               "pet": ((0.10, 20.00), (0.88, 3.41), (25.92, 5.40)),
                               "mri+pet": ((0.12, 16.67), (0.86, 4.65), (24.77, 5.85))})
        + _t4("native", "l1+ssim", {"mri": ((0.11, 27.27), (0.86, 5.81), (25.89, 9.15)),
                                    "pet": ((0.09, 22.22), (0.88, 3.41), (26.99, 7.08)),
                                    "mri+pet": ((0.09, 22.22), (0.88, 3.41), (27.15, 6.85))})),
    # Figure 5: native better than template (p < 0.01) in 14 of 18 comparisons
    "native_vs_template": {"significant": 14, "comparisons": 18},
}
