"""S0's two VAEs learn: 300-400 steps on a toy striatum beat the mean training image
(and, for the conditional VAE, the damaged input).

The tiny end-to-end workflow trains too briefly to show learning, so these tests run the
families' own training step (:class:`spectsynth.models.vae.recipe.VAERecipe`: the ELBO, KL
warm-up and Adam of S0) on a toy with a known answer.  A toy slice is a head (an ellipse of
background uptake 0.3) with two striatal blobs of equal uptake; each slice has its own global
gain (0.8-1.2) and its own shift of up to 3 px in each direction, so the mean training image is
a blurred head that matches no slice (the null model: the best single image without looking at
the input).  The damaged slice is the same with the left blob's uptake cut to 20-60 %.

* ``vae`` (S0 clinical; trained on normals only): the posterior-mean reconstruction of a
  held-out normal slice is closer to it than the mean training image.
* ``cvae`` (S0 restoration): the prediction from the damaged slice is closer to the clean
  original than both the damaged slice itself and the mean training image, over the whole
  slice and inside the damaged blob.

The untrained network fails the same check, so each test proves that training, not the
architecture, beats the baselines.  Seeded, CPU, one thread, seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectsynth.checkpoints import seed_everything
from spectsynth.device import select_device
from spectsynth.experiments import expand_experiments
from spectsynth.models import build_model, get_family, init_weights

SIZE = 32

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _toy(rng: np.random.Generator, n: int):
    """(damaged, original, left-blob mask) of ``n`` toy slices as (n, 1, H, W) tensors."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    dy, dx = rng.integers(-3, 4, size=(2, n, 1, 1))
    yy, xx = yy - dy, xx - dx
    head = ((((yy - 16) / 13.0) ** 2 + ((xx - 16) / 11.0) ** 2) < 1).astype(float)
    left, right = (np.exp(-((yy - 15) ** 2 + (xx - cx) ** 2) / (2 * 2.2 ** 2)) for cx in (11, 21))
    gain = rng.uniform(0.8, 1.2, n)[:, None, None]
    orig = gain * (0.3 * head + 1.5 * (left + right))
    damaged = orig - gain * 1.5 * (1 - rng.uniform(0.2, 0.6, n)[:, None, None]) * left
    as_t = lambda a: torch.tensor(a[:, None], dtype=torch.float32)    # noqa: E731
    return as_t(damaged), as_t(orig), torch.from_numpy(left[:, None] > 0.5)


def _recipe(family: str):
    cfg = {"datasets": {"s0": {"size": SIZE}}, "training": {"progress": False},
           "experiments": {"toy": {"study": "S0", "model": family, "epochs": 1, "base_channels": 8,
                                   "latent_dim": 8, "batch_size": 16, "lr": 2e-3, "kl_warmup_epochs": 0.5}}}
    spec = expand_experiments(cfg)["toy"]
    seed_everything(0)
    nets = build_model(family, spec)
    init_weights(nets)
    return get_family(family).recipe()(spec, nets, select_device("cpu", amp="off", channels_last=False,
                                                                  context="toy"))


def _train(recipe, steps: int) -> torch.Tensor:
    """``steps`` steps on fresh toy batches (the damaged slice is the cVAE's input; the VAE
    reads only the clean target), the learning rate constant for the first half and decayed
    linearly to 0 over the second (the harness's ``lr_decay_start_epoch`` schedule, per step);
    returns the mean training original (the null model)."""
    rng = np.random.default_rng(0)
    lr = float(recipe.spec["lr"])
    total = 0
    for k in range(steps):
        for opt in recipe.optim.values():
            for group in opt.param_groups:
                group["lr"] = lr * min(1.0, 2.0 * (1.0 - k / steps))
        dam, orig, _ = _toy(rng, 16)
        recipe.train_step({"input": dam, "target": orig}, k / steps)
        total = total + orig.sum(0, keepdim=True)
    return total / (16 * steps)


def _predict(recipe, inp: torch.Tensor) -> torch.Tensor:
    recipe.nets.eval()
    pred = recipe.predict(inp)
    recipe.nets.train()
    return pred


def _l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    d = (a.expand_as(b) - b).abs()
    return float(d[mask].mean() if mask is not None else d.mean())


def test_vae_reconstructs_normal_slices_better_than_the_mean_training_image():
    recipe = _recipe("vae")
    _, test_orig, _ = _toy(np.random.default_rng(100), 32)         # held-out normal slices
    untrained = _predict(recipe, test_orig)
    null = _l1(_train(recipe, 300), test_orig)
    trained = _predict(recipe, test_orig)
    for name, pred in (("untrained", untrained), ("trained", trained)):
        err = _l1(pred, test_orig)
        assert (err < 0.6 * null) == (name == "trained"), (name, err, null)


def test_cvae_restores_a_toy_deficit_better_than_the_damaged_input_and_the_mean_training_image():
    recipe = _recipe("cvae")
    test_in, test_orig, left = _toy(np.random.default_rng(100), 32)
    untrained = _predict(recipe, test_in)
    baselines = {"damaged input": test_in, "mean training image": _train(recipe, 400)}
    trained = _predict(recipe, test_in)
    whole = {k: _l1(v, test_orig) for k, v in baselines.items()}
    in_blob = {k: _l1(v, test_orig, left) for k, v in baselines.items()}
    for name, pred in (("untrained", untrained), ("trained", trained)):
        err, err_blob = _l1(pred, test_orig), _l1(pred, test_orig, left)
        beats = all(err < 0.7 * e for e in whole.values()) and all(err_blob < 0.5 * e for e in in_blob.values())
        assert beats == (name == "trained"), (name, err, whole, err_blob, in_blob)
