"""Light pieces of the simulation that planning and file writing need without the physics:
the random stream of every image and S0's degradation design."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError


def rng_for(seed: int, subject: str, tracer: str, index: int) -> np.random.Generator:
    """The random generator of one image (or of a subject's own draws, ``index=SUBJECT_STREAM``)."""
    ss = np.random.SeedSequence([int(seed), zlib.crc32(subject.encode()), zlib.crc32(tracer.encode()), int(index)])
    return np.random.default_rng(ss)


@dataclass(frozen=True)
class DatDegradation:
    """One point of the S0 design: fractions of specific binding kept."""

    pbr: float = 1.0
    cbr: float = 1.0
    slr: float = 1.0
    design_set: str = "normal"

    @property
    def is_normal(self) -> bool:
        return self.pbr == 1.0 and self.cbr == 1.0 and self.slr == 1.0

    @property
    def desc(self) -> str:
        def f(v: float) -> str:
            return f"{v:.2f}".rstrip("0").rstrip(".").replace(".", "p")

        return f"pbr{f(self.pbr)}cbr{f(self.cbr)}slr{f(self.slr)}"


def dat_design(dat_cfg: dict, seed: int) -> list[DatDegradation]:
    """The degradations simulated for every subject: the normal first, then ``n_main``
    ("main", for training/testing) and ``n_validation`` ("validation") distinct points.

    Candidates are every (PBR, CBR, SLR) of the configured grids with CBR >= PBR (the
    putamen is affected before the caudate), not all three equal to 1; they are drawn
    without replacement in an order fixed by ``seed``, so every subject gets the same design.
    """
    g = dat_cfg["grid"]
    cands = [(p, c, s) for p in g["pbr"] for c in g["cbr"] for s in g["slr"]
             if c >= p and not (p == 1 and c == 1 and s == 1)]
    cands = sorted(set(cands))
    need = int(dat_cfg["n_main"]) + int(dat_cfg["n_validation"])
    if need > len(cands):
        from ..errors import ConfigError

        raise ConfigError(f"simulate.dat asks for {need} degradations (n_main + n_validation) but the "
                          f"PBR/CBR/SLR grid offers only {len(cands)} combinations with CBR >= PBR; add grid values "
                          "or lower the counts")
    order = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(b"dat-design")])).permutation(len(cands))
    chosen = [cands[i] for i in order[:need]]
    for p, c, s in chosen:
        check_dat_parameters(p, c, s)
    out = [DatDegradation()]
    for k, (p, c, s) in enumerate(chosen):
        out.append(DatDegradation(float(p), float(c), float(s),
                                  "main" if k < int(dat_cfg["n_main"]) else "validation"))
    return out


def check_dat_parameters(pbr: float, cbr: float, slr: float) -> None:
    """Refuse degradation parameters outside [0, 1]."""
    for name, v in (("PBR", pbr), ("CBR", cbr), ("SLR", slr)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
            raise ConfigError(f"DaT degradation parameter {name} = {v!r} is outside [0, 1]; "
                              f"{name} is a fraction of the normal specific binding")
