"""S0's published values.

Every number is copied from the paper named in ``source`` (see :mod:`spectsynth.studies.published`)."""

from __future__ import annotations

# S0 (Dudasova & Trnka, slides): Dice table of the segmented basal ganglia, ASP and the binding
# ratio read by the regression CNN (discussion slide "Performance evaluation").
PUBLISHED = {
    "source": "Dudasova & Trnka, pseudo-normal SPECT with a VAE (slides, seeds/000_*)",
    "values": {
        "dice_L": {"quantity": "Dice of the segmented BG, left (mean ± sd, min-max)",
                   "published": "78 ± 8 % (62-90 %)", "value": 0.78, "sd": 0.08, "relation": "=",
                   "unit": "fraction", "source": "Dice table"},
        "dice_R": {"quantity": "Dice of the segmented BG, right (mean ± sd, min-max)",
                   "published": "82 ± 5 % (69-93 %)", "value": 0.82, "sd": 0.05, "relation": "=",
                   "unit": "fraction", "source": "Dice table"},
        "asp": {"quantity": "Anatomy Shape Precision, |prediction - original| of every measure",
                "published": "< 3 px", "value": 3.0, "relation": "<", "unit": "px",
                "source": "discussion, performance evaluation"},
        "sbr_fraction_075": {"quantity": "fraction of cases with binding-ratio error < 0.75 "
                                         "(regression CNN)",
                             "published": "52 %", "value": 0.52, "relation": "=", "unit": "fraction",
                             "source": "discussion, performance evaluation"},
    },
}

