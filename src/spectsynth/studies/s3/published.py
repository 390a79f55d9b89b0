"""S3's published values (SSIM against PET, ROI regressions, visual reading).

Every number is copied from the paper named in ``source`` (see :mod:`spectsynth.studies.published`)."""

from __future__ import annotations

PUBLISHED = {
    "source": "S3 (Ann Nucl Med 2025): SSIM against PET and the ROI regressions",
    "scale": "S3 paper scale: 73 patients (43 train, 15 test)",
    # SSIM against the PET: the SPECT itself (the input baseline) and the pix2pix prediction
    "ssim": {"input_vs_target": 0.79, "prediction_vs_target": 0.86},
    # least-squares lines y = intercept + slope x and Pearson r on the ROI values
    "regressions": (
        {"label": "input vs target", "intercept": 0.13, "slope": 0.63, "r": 0.77},
        {"label": "prediction vs target", "intercept": 0.10, "slope": 0.65, "r": 0.78},
        {"label": "prediction vs input", "intercept": 0.01, "slope": 0.89, "r": 0.86},
    ),
    # mean 5-point visual similarity to the PET of the pix2pix images, open and blind reading
    "reading": {"open": 4.2, "blind": 3.5},
}
