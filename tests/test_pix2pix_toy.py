"""pix2pix learns: 150 steps on a tiny paired toy task beat the null model, the input and the
per-pixel linear map.

The tiny end-to-end workflow trains too briefly to show learning, so this test trains the
real recipe (:class:`spectsynth.models.pix2pix.recipe.Pix2PixRecipe`, the generator, discriminator and loss
of S2/S3) on a task with a known answer: the target is the input blob mirrored left-right and
with inverted contrast.  Neither the input itself nor the training mean target (the null
model) can match it; a generator that learned anything about the input must.

The per-pixel linear map (:func:`spectsynth.evaluate.fit_pixel_linear_map`, the baseline the
S2/S3 evaluations report beside pix2pix) fits ``target = a + b * input`` at each pixel from
the same training pairs.  The inverted contrast is such a map, the mirroring is not: the
target at a pixel depends on the input at the mirrored pixel, which the map can reach only
through the correlation of a pixel with its mirror image (near the midline, where the two
coincide).  So the toy measures what pix2pix adds over a pixel-wise intensity transfer: moving
information across the image.  Seeded, CPU, seconds; the untrained generator fails the same
check, so the test can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectsynth.checkpoints import seed_everything
from spectsynth.device import select_device
from spectsynth.evaluate import apply_pixel_linear_map, fit_pixel_linear_map
from spectsynth.experiments import expand_experiments
from spectsynth.models import build_model, init_weights
from spectsynth.models.pix2pix.recipe import Pix2PixRecipe, loss_shares

SIZE = 32


def _toy(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    cy, cx = rng.uniform(8, 24, size=(2, n, 1, 1))
    width = rng.uniform(30, 120, size=(n, 1, 1))
    x = 2 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / width) - 1
    y = -x[:, :, ::-1]              # mirrored left-right, contrast inverted
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a[:, None], dtype=np.float32))  # noqa: E731
    return as_t(x), as_t(y)


def _train(steps: int, *, lambda_ssim: float = 0.0, seed: int = 0):
    spec = expand_experiments({"datasets": {"s3": {"size": SIZE}}, "experiments": {
        "toy": {"study": "S3", "model": "pix2pix", "ngf": 8, "ndf": 8, "lr": 2e-3, "batch_size": 8,
                "lambda_ssim": lambda_ssim, "use_dropout": False}}})["toy"]
    seed_everything(seed)
    nets = build_model("pix2pix", spec)
    init_weights(nets)
    recipe = Pix2PixRecipe(spec, nets, select_device("cpu", amp="off"))
    x, y = _toy(64, seed=1)
    gen = torch.Generator().manual_seed(seed)
    first = None
    for _ in range(steps):
        idx = torch.randint(0, len(x), (8,), generator=gen)
        out = recipe.train_step({"input": x[idx], "target": y[idx]}, progress=0.0)
        first = first or {k: float(v) for k, v in out.items()}
    nets.eval()
    return nets["G"], first


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _linear_map_prediction(x_train, y_train, x):
    """The per-pixel linear map fitted on the training pairs, applied to ``x`` -> (N, 1, H, W)."""
    coef = fit_pixel_linear_map([np.concatenate([x_train.numpy(), y_train.numpy()], axis=1).astype(np.float64)])
    return torch.from_numpy(apply_pixel_linear_map(coef, x.numpy())[:, None].astype(np.float32))


def test_pix2pix_beats_the_null_model_the_input_and_the_linear_map_on_a_toy_task():
    G, first = _train(150)
    x_train, y_train = _toy(64, seed=1)
    x, y = _toy(32, seed=2)                       # held-out pairs
    baselines = {"null": y_train.mean(0, keepdim=True).expand_as(y), "identity": x,
                 "linear map": _linear_map_prediction(x_train, y_train, x)}
    err = {k: float((v - y).abs().mean()) for k, v in baselines.items()}
    # the linear map captures the contrast inversion: better than the null model and the input
    assert err["linear map"] < err["null"] < err["identity"], err
    untrained = _train(0)[0]
    for name, net in (("trained", G), ("untrained", untrained)):
        with torch.no_grad():
            l1 = float((net(x) - y).abs().mean())
        beats = all(l1 < 0.6 * e for e in err.values())
        assert beats == (name == "trained"), (name, l1, err)
    # at the start the L1 term dominates the generator loss when SSIM is off
    assert first["G_share_ssim"] == 0 and first["G_share_l1"] > 0.9


def test_loss_shares_at_the_start_of_training():
    """With the default S2 weight (lambda_ssim 50) the SSIM term carries a comparable share of
    the generator loss at the start; with the paper weight 1 it is a few per cent."""
    from spectsynth.studies.s2 import PRESET_SSIM_WEIGHT
    from spectsynth.studies.s2 import SSIM_WEIGHT as S2_SSIM_WEIGHT

    _, balanced = _train(1, lambda_ssim=S2_SSIM_WEIGHT)
    _, paper = _train(1, lambda_ssim=PRESET_SSIM_WEIGHT["paper_weights"])
    assert 0.25 < balanced["G_share_ssim"] < 0.75 and balanced["G_share_l1"] > 0.25
    assert paper["G_share_ssim"] < 0.05
    for shares in (balanced, paper):
        assert sum(shares[f"G_share_{k}"] for k in ("adv", "l1", "ssim")) == pytest.approx(1.0, rel=1e-5)
    assert float(loss_shares({"adv": 1.0, "l1": 3.0})["G_share_l1"]) == pytest.approx(0.75)


def test_ssim_weight_default_and_the_paper_weights_preset():
    entry = {"study": "S2", "model": "pix2pix", "inputs": ["mri"], "spaces": ["native"]}
    default = expand_experiments({"experiments": {"s2": entry}})
    paper = expand_experiments({"experiments": {"s2": {**entry, "preset": "paper_weights"}}})
    own = expand_experiments({"experiments": {"s2": {**entry, "preset": "paper_weights", "lambda_ssim": 7.0}}})
    assert default["s2_mri_native_l1ssim"]["lambda_ssim"] == 50.0 and default["s2_mri_native_l1"]["lambda_ssim"] == 0
    assert (paper["s2_mri_native_l1ssim"]["lambda_ssim"], paper["s2_mri_native_l1ssim"]["lambda_l1"]) == (1.0, 100.0)
    assert paper["s2_mri_native_l1"]["lambda_ssim"] == 0 and paper["s2_mri_native_l1"]["preset"] == "paper_weights"
    assert own["s2_mri_native_l1ssim"]["lambda_ssim"] == 7.0 and own["s2_mri_native_l1"]["lambda_ssim"] == 0
    s3 = expand_experiments({"experiments": {"s3": {"study": "S3", "model": "pix2pix", "preset": "paper_weights"}}})
    assert s3["s3"]["lambda_ssim"] == 0 and s3["s3"]["loss"] == "l1"
