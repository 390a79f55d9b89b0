"""S1's conditional FastGAN learns: 150 steps on a toy striatum bring its samples far closer
to the real distribution than the untrained generator, by the pipeline's own selection
distance.

The tiny end-to-end workflow trains too briefly to show learning, so this test runs the
family's training step (:class:`spectsynth.models.fastgan.recipe.FastGANRecipe`: hinge loss,
the discriminator's reconstruction loss, EMA generator) on a toy with S1's three patterns
(dataset B's condition vector): a head (background uptake 0.3) with two striatal blobs, both
full (normal), the left one cut to 20-60 % (unilateral) or both cut (bilateral), each slice
shifted by up to 2 px, max-normalised and scaled to [-1, 1] as S1's slices.

The distance is the recipe's validation score (:func:`spectsynth.models.fastgan.scoring.gan_score`
under the default criterion, the Frechet distance of :class:`~spectsynth.models.fastgan.scoring.FeatureNet`
features normalised by the real features' trace, with the feature network trained on the toy
training slices as the recipe's ``prepare`` does) against 64 real validation slices per
pattern.  Beside it:

* floor: a second, independent real split scored as if it were the generator's samples
  (what two samples of the real distribution score);
* baseline: the untrained generator (seed 0, the one that is then trained).

The trained generator must come within a tenth of the baseline's distance; an untrained
generator of another seed must not (so the test proves that training, not the architecture or
a lucky initialisation, closes the gap), and the real split must score far below both.  S1's own
quantities (``stats``: mean counts, L/R ratio, mean and SD maps) must move the same way.  After
150 steps the generator is still far from the floor (about 3 against 0.004, the untrained one
about 270): the test shows learning, not a converged GAN.  The EMA decay is 0.9 here (0.999 in the study) so that 150 steps show in the EMA generator.
Seeded, CPU, one thread, seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from spectsynth.checkpoints import seed_everything
from spectsynth.device import select_device
from spectsynth.experiments import expand_experiments
from spectsynth.labels import PATTERNS
from spectsynth.models import build_model, get_family, init_weights
from spectsynth.models.fastgan.data import condition_vector
from spectsynth.models.fastgan.scoring import condition_label, train_feature_net

SIZE = 32
LEVEL = "COR"                 # dataset B: one level, the condition is the pattern alone

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _toy(rng: np.random.Generator, n: int, pattern: str) -> torch.Tensor:
    """``n`` toy slices of ``pattern`` as (n, 1, H, W) in [-1, 1]."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    dy, dx = rng.integers(-2, 3, size=(2, n, 1, 1))
    yy, xx = yy - dy, xx - dx
    head = ((((yy - 16) / 13.0) ** 2 + ((xx - 16) / 11.0) ** 2) < 1).astype(float)
    left, right = (np.exp(-((yy - 15) ** 2 + (xx - cx) ** 2) / (2 * 2.2 ** 2)) for cx in (11, 21))
    full = np.ones((n, 1, 1))
    cut_left = rng.uniform(0.2, 0.6, (n, 1, 1)) if pattern != "normal" else full
    cut_right = rng.uniform(0.2, 0.6, (n, 1, 1)) if pattern == "bilateral" else full
    img = 0.3 * head + 1.5 * (cut_left * left + cut_right * right)
    img = img / img.max(axis=(1, 2), keepdims=True)
    return torch.tensor(img[:, None] * 2 - 1, dtype=torch.float32)


def _split(seed: int, n: int) -> dict[tuple[str, str], torch.Tensor]:
    rng = np.random.default_rng(seed)
    return {(LEVEL, p): _toy(rng, n, p) for p in PATTERNS}


def _recipe(seed: int):
    cfg = {"datasets": {"s1": {"size": SIZE}}, "training": {"progress": False},
           "experiments": {"toy": {"study": "S1", "model": "fastgan", "variants": ["B"], "seed": seed,
                                   "base_channels": 4, "latent_dim": 32, "lr": 5e-4, "batch_size": 8,
                                   "ema_decay": 0.9, "gan_eval_samples": 64, "gan_feature_steps": 200}}}
    spec = expand_experiments(cfg)["toy_B"]
    assert spec["selection_criterion"] == "feature_distance"     # the pipeline's default
    seed_everything(seed)
    nets = build_model("fastgan", spec)
    init_weights(nets)
    return get_family("fastgan").recipe()(spec, nets, select_device("cpu", amp="off", channels_last=False,
                                                                     context="toy"))


class _Replay(nn.Module):
    """A "generator" that returns the slices of a real split for the condition asked (the
    latents are ignored): scores a real split as if it were generated."""

    def __init__(self, split: dict[tuple[str, str], torch.Tensor]):
        super().__init__()
        self.split = split

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        images = self.split[(LEVEL, PATTERNS[int(cond[0].argmax())])]
        assert images.shape[0] >= z.shape[0]
        return images[: z.shape[0]]


def _score(recipe, generator: nn.Module) -> dict[str, float]:
    """The recipe's own validation (``gan_score`` with the spec's samples, seed and criterion)
    of ``generator`` in place of the recipe's EMA generator."""
    ema, recipe.ema = recipe.ema, generator
    try:
        return recipe.validate(None)
    finally:
        recipe.ema = ema


def test_fastgan_samples_get_closer_to_the_real_distribution_than_the_untrained_generator():
    recipe = _recipe(seed=0)
    spec = recipe.spec
    cond = spec["condition"]
    train = _split(0, 200)
    images = torch.cat(list(train.values()))
    labels = torch.tensor([condition_label(lv, p, cond["levels"], cond["patterns"], cond["use_level"])
                           for (lv, p), x in train.items() for _ in range(len(x))])
    recipe.feature_net = train_feature_net(images, labels, len(PATTERNS), steps=int(spec["gan_feature_steps"]),
                                           seed=int(spec["seed"]))
    recipe.real_val = _split(1, 64)
    recipe.cond_vectors = {k: torch.from_numpy(condition_vector(None, k[1], use_level=False))[None]
                           for k in recipe.real_val}
    floor = _score(recipe, _Replay(_split(2, 64)))
    baseline = _score(recipe, recipe.ema)
    other_init = _score(recipe, _recipe(seed=1).ema)

    gen = torch.Generator().manual_seed(0)
    steps, bs = 150, int(spec["batch_size"])
    vectors = torch.cat([recipe.cond_vectors[(LEVEL, PATTERNS[int(c)])] for c in labels])
    for k in range(steps):
        idx = torch.randint(0, len(images), (bs,), generator=gen)
        recipe.train_step({"image": images[idx], "cond": vectors[idx]}, k / steps)
    trained = _score(recipe, recipe.ema)

    parts = ("score", "stats")
    report = {k: {p: round(v[p], 4) for p in parts} for k, v in
              (("floor", floor), ("untrained", baseline), ("other init", other_init), ("trained", trained))}
    assert floor["score"] < 0.01 * baseline["score"], report       # real vs real: indistinguishable
    assert floor["stats"] < 0.05 * baseline["stats"], report
    for name, s in (("other init", other_init), ("trained", trained)):
        closer = s["score"] < 0.1 * baseline["score"] and s["stats"] < 0.5 * baseline["stats"]
        assert closer == (name == "trained"), (name, report)
    assert trained["score"] > floor["score"], report               # the floor is a floor
