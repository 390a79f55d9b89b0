"""Networks, losses, registry and device choice: shapes, one-batch over-fit, SSIM reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from spectsynth import losses as L
from spectsynth.checkpoints import HASH_EXCLUDE_TRAINING
from spectsynth.device import select_device
from spectsynth.errors import ConfigError
from spectsynth.experiments import expand_experiments
from spectsynth.models import build_model, get_family, init_weights
from spectsynth.models.fastgan import losses as FL
from spectsynth.models.fastgan.network import Discriminator, Generator, crop_in_pixels
from spectsynth.models.fastgan.scoring import FeatureNet, frechet_distance, s1_distance
from spectsynth.models.pix2pix.network import PatchDiscriminator, UnetGenerator
from spectsynth.models.vae import losses as VL
from spectsynth.models.vae.network import VAE, ConditionalVAE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("n_cond", [6, 3])
def test_fastgan_shapes(size, n_cond):
    g = Generator(size, n_cond, base_channels=4)
    d = Discriminator(size, n_cond, base_channels=4)
    z = torch.randn(2, 256)
    cond = torch.zeros(2, n_cond)
    cond[:, 0] = 1
    img = g(z, cond)
    assert img.shape == (2, 1, size, size)
    assert img.abs().max() <= 1.0                      # tanh output
    logits, rec_whole, rec_part = d(img, cond, (1, 3))
    r = min(size, 64)
    assert logits.shape == (2,)
    assert rec_whole.shape == (2, 1, r, r) and rec_part.shape == (2, 1, r, r)
    assert d(img, cond).shape == (2,)
    # the discriminator input really has 1 + n_cond channels
    first = next(m for m in d.stem.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 1 + n_cond


def test_fastgan_has_exactly_one_skip_layer_excitation():
    from spectsynth.models.fastgan.network import SkipLayerExcitation
    g = Generator(64, 6, base_channels=4)
    assert sum(isinstance(m, SkipLayerExcitation) for m in g.modules()) == 1
    assert g.fc.in_features == 256 + 6 and g.fc.out_features == 64
    assert any(isinstance(m, torch.nn.GLU) for m in g.modules())


def test_fastgan_rejects_small_or_odd_sizes():
    with pytest.raises(ValueError):
        Generator(16, 6)
    with pytest.raises(ValueError):
        Discriminator(48, 6)


@pytest.mark.parametrize("size,in_ch", [(32, 1), (64, 2), (256, 1)])
def test_pix2pix_shapes(size, in_ch):
    g = UnetGenerator(in_ch, 1, size, ngf=4)
    d = PatchDiscriminator(in_ch + 1, ndf=4)
    x = torch.randn(2, in_ch, size, size)
    y = g(x)
    assert y.shape == (2, 1, size, size) and y.abs().max() <= 1.0
    patches = d(x, y)
    assert patches.shape[:2] == (2, 1) and patches.shape[-1] == size // 8 - 2


def test_pix2pix_generator_depth_is_an_option_of_the_family():
    from spectsynth.experiments import expand_experiments
    from spectsynth.models import get_family

    assert UnetGenerator(1, 1, 64, ngf=4).depth == 6 and UnetGenerator(1, 1, 512, ngf=4).depth == 8
    shallow = UnetGenerator(1, 1, 64, ngf=4, depth=5)
    assert shallow.depth == 5 and shallow(torch.randn(1, 1, 64, 64)).shape == (1, 1, 64, 64)
    assert sum(p.numel() for p in shallow.parameters()) < sum(p.numel() for p in UnetGenerator(1, 1, 64, ngf=4).parameters())
    with pytest.raises(ValueError, match=r"generator_depth 7: .* between 5 and log2\(64\) = 6"):
        UnetGenerator(1, 1, 64, depth=7)
    runs = expand_experiments({"experiments": {"deep": {"study": "S3", "model": "pix2pix", "generator_depth": 5},
                                               "auto": {"study": "S3", "model": "pix2pix", "ngf": 4}}})
    assert runs["deep"]["generator_depth"] == 5 and "generator_depth" not in runs["auto"]  # auto: not in the spec
    nets = get_family("pix2pix").build({**runs["deep"], "size": 64, "ngf": 4, "ndf": 4})
    assert nets["G"].depth == 5


@pytest.mark.parametrize("size", [32, 64])
def test_vae_shapes(size):
    vae = VAE(1, size, latent_dim=16, base_channels=4)
    x = torch.randn(3, 1, size, size)
    rec, mu, logvar = vae(x)
    assert rec.shape == x.shape and mu.shape == (3, 16) and logvar.shape == (3, 16)
    assert vae.eval().predict(x).shape == x.shape
    cvae = ConditionalVAE(1, 1, size, latent_dim=16, base_channels=4)
    rec, mu, _ = cvae(x, x)
    assert rec.shape == x.shape and mu.shape == (3, 16)
    assert cvae.eval().predict(x).shape == x.shape


def test_feature_net_shapes():
    net = FeatureNet(9)
    x = torch.randn(5, 1, 32, 32)
    assert net(x).shape == (5, 9) and net.features(x).shape == (5, 64)


# --------------------------------------------------------------------------- losses


def test_ssim_matches_scikit_image():
    rng = np.random.default_rng(0)
    a = rng.random((32, 32)).astype(np.float32)
    b = np.clip(a + 0.2 * rng.standard_normal((32, 32)), 0, 1).astype(np.float32)
    ref = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    ours = float(L.gaussian_ssim(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None], 1.0))
    assert ours == pytest.approx(ref, abs=1e-5)
    assert float(L.ssim_loss(torch.from_numpy(a)[None, None], torch.from_numpy(a)[None, None], 1.0)) \
        == pytest.approx(0.0, abs=1e-6)


def test_hinge_losses_follow_s1_equations():
    logits = torch.tensor([-2.0, 0.0, 0.5, 3.0])
    # L_real = -E[min(0, -1 + D)], L_fake = -E[min(0, -1 - D)], L_G = -E[D]
    assert float(FL.hinge_d_real(logits)) == pytest.approx(float(-torch.clamp(-1 + logits, max=0).mean()))
    assert float(FL.hinge_d_fake(logits)) == pytest.approx(float(-torch.clamp(-1 - logits, max=0).mean()))
    assert float(FL.hinge_g(logits)) == pytest.approx(-0.375)


def test_kl_warmup_and_elbo():
    assert VL.kl_weight(0.0, 2.0, 10) == 0.0
    assert VL.kl_weight(5.0, 2.0, 10) == pytest.approx(1.0)
    assert VL.kl_weight(50.0, 2.0, 10) == pytest.approx(2.0)
    assert VL.kl_weight(0.0, 2.0, 0) == pytest.approx(2.0)
    x = torch.zeros(2, 1, 4, 4)
    t = VL.elbo(x, x, torch.zeros(2, 3), torch.zeros(2, 3), kl_w=1.0)
    assert float(t["loss"]) == 0.0 and float(t["kl"]) == 0.0
    t = VL.elbo(x + 1, x, torch.ones(2, 3), torch.zeros(2, 3), kl_w=0.5)
    assert float(t["recon"]) == pytest.approx(8.0) and float(t["kl"]) == pytest.approx(1.5)
    assert float(t["loss"]) == pytest.approx(8.75)


def test_fastgan_recon_loss_targets_the_right_crop():
    real = torch.arange(64 * 64, dtype=torch.float32).reshape(1, 1, 64, 64) / 4096
    r, c = crop_in_pixels((2, 4), 64)
    assert (r, c) == (16, 32)
    part = real[..., 16:48, 32:64]
    assert float(FL.fastgan_recon_loss(real, part, real, (r, c))) == pytest.approx(0.0, abs=1e-7)
    assert float(FL.fastgan_recon_loss(real, part, real, (0, 0))) > 0.01


def test_s1_distance_and_frechet_are_zero_for_identical_sets():
    rng = np.random.default_rng(1)
    imgs = rng.random((20, 16, 16))
    d = s1_distance(imgs, imgs)
    assert d["total"] == pytest.approx(0.0, abs=1e-9)
    brighter = s1_distance(imgs, np.clip(imgs * 0.5, 0, 1))
    assert brighter["d_mc"] > 1.0
    f = rng.standard_normal((200, 4))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-4)
    assert frechet_distance(f, f + 3.0) == pytest.approx(36.0, rel=0.05)


class _ScaleFreeFeatures(torch.nn.Module):
    """Features of the max-normalised image: blind to a global change of counts (MC)."""

    def features(self, x):
        x01 = (x + 1) / 2
        x01 = x01 / x01.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
        return torch.nn.functional.avg_pool2d(x01, 4).flatten(1)


class _FixedImages(torch.nn.Module):
    """A 'generator' that returns fixed slices with their counts scaled by ``gain``."""

    def __init__(self, images01, gain):
        super().__init__()
        self.images01, self.gain = images01, gain

    def forward(self, z, cond):
        idx = torch.arange(z.shape[0]) % self.images01.shape[0]
        return self.images01[idx] * self.gain * 2 - 1


def test_feature_distance_criterion_ignores_mean_counts_study_quantities_does_not():
    from spectsynth.models.fastgan.scoring import gan_score

    torch.manual_seed(0)
    base = torch.rand(12, 1, 16, 16) * 0.5 + 0.25
    real = {("COR", "normal"): base[:6] * 2 - 1}
    cond = {("COR", "normal"): torch.zeros(1, 6)}
    kw = dict(n_samples=6, latent_dim=4, seed=0, feature_weight=1.0)
    same = gan_score(_FixedImages(base[6:], 1.0), real, cond, _ScaleFreeFeatures(), **kw)
    dimmer = gan_score(_FixedImages(base[6:], 0.6), real, cond, _ScaleFreeFeatures(), **kw)
    # only the mean counts changed: the feature-only score is unchanged, the study-quantity score is worse
    assert dimmer["score_feature_distance"] == pytest.approx(same["score_feature_distance"], rel=1e-6)
    assert dimmer["score_study_quantities"] > same["score_study_quantities"] + 1.0
    assert same["score"] == same["score_feature_distance"]                    # the default criterion
    chosen = gan_score(_FixedImages(base[6:], 0.6), real, cond, _ScaleFreeFeatures(), criterion="study_quantities",
                       **kw)
    assert chosen["score"] == chosen["score_study_quantities"]
    with pytest.raises(ValueError, match="unknown GAN selection criterion"):
        gan_score(_FixedImages(base[6:], 1.0), real, cond, None, criterion="mc", **kw)


# --------------------------------------------------------------------------- over-fit one batch


def _smooth_batch(size: int = 32) -> torch.Tensor:
    g = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    blobs = [torch.exp(-((xx - 0.3 * i + 0.4) ** 2 + (yy - 0.1 * i) ** 2) / 0.1) for i in range(4)]
    return torch.stack(blobs)[:, None] * 2 - 1


_OVERFIT = {
    "fastgan": ({"study": "S1", "model": "fastgan", "variants": ["A"], "base_channels": 8}, "D_recon"),
    "pix2pix": ({"study": "S2", "model": "pix2pix", "inputs": ["mri"], "spaces": ["native"], "losses": ["l1"],
                 "ngf": 8, "ndf": 8}, "G_l1"),
    "vae": ({"study": "S0", "model": "vae", "base_channels": 8, "kl_warmup_epochs": 0}, "recon_px"),
    "cvae": ({"study": "S0", "model": "cvae", "base_channels": 8}, "recon_px"),
}


@pytest.mark.parametrize("family", list(_OVERFIT))
def test_one_batch_overfit(family):
    """40 Adam steps (lr 1e-3) on one batch cut the family's reconstruction loss at least 3-fold."""
    entry, key = _OVERFIT[family]
    cfg = {"datasets": {k: {"size": 32} for k in ("s0", "s1", "s2")},
           "experiments": {"x": {**entry, "lr": 1e-3}}}
    spec = next(iter(expand_experiments(cfg).values()))
    torch.manual_seed(0)
    nets = build_model(family, spec)
    init_weights(nets)
    recipe = get_family(family).recipe()(spec, nets, select_device("cpu"))
    x = _smooth_batch()
    if family == "fastgan":
        batch = {"image": x, "cond": torch.eye(6)[:4]}
    elif family == "pix2pix":
        batch = {"input": x, "target": -torch.flip(x, (-1,))}
    else:
        batch = {"input": x + 1, "target": (x + 1) * 2}
    hist = [float(recipe.train_step(batch, 1.0)[key]) for _ in range(40)]
    assert np.isfinite(hist).all()
    assert np.mean(hist[:3]) / np.mean(hist[-3:]) > 3.0, hist


# --------------------------------------------------------------------------- registry & config


def test_expand_experiments_grid_and_variants():
    cfg = {"datasets": {"s1": {"size": 64}},
           "experiments": {"s1_fastgan": {"study": "S1", "model": "fastgan"},
                           "s2_pix2pix": {"study": "S2", "model": "pix2pix"},
                           "s0_restoration": {"study": "S0", "model": "cvae"},
                           "off": {"study": "S3", "model": "pix2pix", "enabled": False}}}
    e = expand_experiments(cfg)
    s2 = [k for k in e if k.startswith("s2_pix2pix_")]
    assert len(s2) == 12
    assert "s2_pix2pix_mripet_template_l1ssim" in e and "off" not in e
    assert e["s2_pix2pix_mripet_template_l1ssim"]["input_channels"] == ["mri", "pet"]
    assert e["s2_pix2pix_mripet_template_l1ssim"]["dataset"] == "s2_template"
    assert e["s2_pix2pix_mri_native_l1ssim"]["lambda_ssim"] > 0
    assert e["s2_pix2pix_mri_native_l1"]["lambda_ssim"] == 0
    assert e["s2_pix2pix_mri_native_l1"]["batch_size"] == 8 and e["s2_pix2pix_mri_native_l1"]["lr"] == 1e-4
    a, b = e["s1_fastgan_A"], e["s1_fastgan_B"]
    assert a["condition"]["n_cond"] == 6 and b["condition"]["n_cond"] == 3
    assert b["condition"]["levels"] == ["COR"]
    assert (a["lr"], a["betas"], a["batch_size"], a["epochs"]) == (2e-4, [0.9, 0.999], 4, 1000)
    orig = expand_experiments({"experiments": {"p": {"study": "S3", "model": "pix2pix", "preset": "original"}}})
    assert (orig["p"]["lr"], orig["p"]["betas"][0], orig["p"]["lambda_l1"]) == (2e-4, 0.5, 100.0)


@pytest.mark.parametrize("entry,needle", [
    ({"study": "S9", "model": "pix2pix"}, "unknown study"),
    ({"study": "S2", "model": "cyclegan"}, "unknown model"),
    ({"study": "S1", "model": "pix2pix"}, "does not serve study S1"),
    ({"study": "S2", "model": "pix2pix", "inputs": ["ct"]}, "unknown inputs"),
    ({"study": "S2", "model": "pix2pix", "batchsize": 3}, "unknown key"),
])
def test_expand_experiments_bad_entries_name_the_experiment(entry, needle):
    with pytest.raises(ConfigError) as err:
        expand_experiments({"experiments": {"my_run": entry}})
    assert "my_run" in str(err.value) and needle in str(err.value)


_STUDY_OF = {"vae": "S0", "cvae": "S0", "fastgan": "S1", "pix2pix": "S3"}


@pytest.mark.parametrize("family", ["vae", "cvae", "fastgan", "pix2pix"])
def test_registry_family_selection_metrics_are_the_ones_experiments_accept(family):
    from spectsynth.models import FAMILY_DEFAULTS, REGISTRY
    from spectsynth.selection import DIRECTION

    fam = REGISTRY[family]
    assert FAMILY_DEFAULTS[family] == dict(fam.defaults) and fam.name == family
    for metric in DIRECTION:
        entry = {"study": _STUDY_OF[family], "model": family, "selection_metric": metric}
        if metric in fam.selection_metrics:
            spec = next(iter(expand_experiments({"experiments": {"run": entry}}).values()))
            assert spec["selection_metric"] == metric
        else:
            with pytest.raises(ConfigError, match="does not fit model"):
                expand_experiments({"experiments": {"run": entry}})
    nets = build_model(family, {"size": 32, "input_channels": ["a"], "target_channels": ["b"]})
    assert set(nets) == ({"vae"} if family in ("vae", "cvae") else {"G", "D"})
    assert fam.paired == (family != "fastgan")


def test_importing_the_model_registry_does_not_import_torch():
    import subprocess
    import sys
    code = ("import sys, spectsynth.models as m, spectsynth.experiments as e; m.get_family('fastgan'); "
            "e.expand_experiments({'experiments': {'a': {'study': 'S1', 'model': 'fastgan'}}}); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_build_model_unknown_family():
    with pytest.raises(ConfigError, match="unknown model family"):
        build_model("diffusion", {"size": 32})


def test_device_choice():
    assert select_device("auto").device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    cpu = select_device("cpu", amp="bf16")
    assert cpu.amp_dtype is None and not cpu.grad_scaler    # no autocast on the CPU
    with pytest.raises(ConfigError, match="unknown device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError) as err:
            select_device("cuda", context="experiment s1_fastgan_A")
        assert "experiment s1_fastgan_A" in str(err.value) and "training.device" in str(err.value)


def test_cudnn_autotuning_only_on_cuda_and_recorded():
    before = torch.backends.cudnn.benchmark
    cpu = select_device("cpu", cudnn_benchmark=True)
    assert not cpu.cudnn_benchmark and cpu.record()["cudnn_benchmark"] is False
    assert torch.backends.cudnn.benchmark == before            # the CPU leaves the process flag alone


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cudnn_autotuning_is_set_for_the_process_on_cuda():
    before = torch.backends.cudnn.benchmark
    try:
        on = select_device("cuda", cudnn_benchmark=True)
        assert on.cudnn_benchmark and torch.backends.cudnn.benchmark
        assert on.record()["cudnn_benchmark"] is True and "cuDNN autotuning" in on.describe()
        off = select_device("cuda", cudnn_benchmark=False)
        assert not off.cudnn_benchmark and not torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before


def test_compile_is_a_cuda_option_and_recorded():
    cpu = select_device("cpu", compile="reduce-overhead")
    assert cpu.compile == "off" and cpu.record()["compile"] == "off"      # ignored on the CPU
    with pytest.raises(ConfigError, match="training.compile"):
        select_device("cpu", compile="fast")
    assert "compile" in HASH_EXCLUDE_TRAINING              # on or off, the checkpoints stay valid


@pytest.mark.parametrize("family", ["fastgan", "vae"])
def test_compiled_networks_train_as_the_plain_ones(family):
    """training.compile compiles every network in place (torch's eager backend here: the wiring,
    not inductor's kernels): the state_dict keys stay those of the plain networks (checkpoints
    resume with or without it), the recipe's own copies (FastGAN's EMA generator) stay plain, and
    the steps give the plain networks' losses."""
    from spectsynth.device import compile_networks
    entry, _ = _OVERFIT[family]
    cfg = {"datasets": {k: {"size": 32} for k in ("s0", "s1", "s2")}, "experiments": {"x": entry}}
    spec = next(iter(expand_experiments(cfg).values()))
    batch = ({"image": _smooth_batch(), "cond": torch.eye(6)[:4]} if family == "fastgan"
             else {"input": _smooth_batch(), "target": _smooth_batch()})
    runs = {}
    for mode in ("off", "default"):
        torch.manual_seed(0)
        nets = build_model(family, spec)
        init_weights(nets)
        keys = list(nets.state_dict())
        recipe = get_family(family).recipe()(spec, nets, select_device("cpu"))
        compile_networks(nets, mode, backend="eager")
        assert list(nets.state_dict()) == keys
        assert all((getattr(n, "_compiled_call_impl", None) is not None) == (mode != "off") for n in nets.values())
        if family == "fastgan":
            assert getattr(recipe.ema, "_compiled_call_impl", None) is None
        torch.manual_seed(1)
        runs[mode] = [{k: float(v) for k, v in recipe.train_step(batch, 0.5).items()} for _ in range(2)]
    for plain, compiled in zip(runs["off"], runs["default"]):
        assert compiled == pytest.approx(plain, rel=1e-5, abs=1e-6)
    with pytest.raises(ConfigError, match="training.compile"):
        compile_networks(nets, "fastest")


def test_importing_the_package_does_not_touch_cuda():
    import subprocess
    import sys
    code = ("import torch, spectsynth.train, spectsynth.datasets, spectsynth.models, spectsynth.selection;"
            "print(torch.cuda.is_initialized())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("family", list(_OVERFIT))
def test_mixed_precision_step_runs(family):
    """The autocast + loss-scaling path (used on CUDA) runs for every family (emulated on the CPU)."""
    from spectsynth.device import DeviceSetup
    entry, key = _OVERFIT[family]
    cfg = {"datasets": {k: {"size": 32} for k in ("s0", "s1", "s2")}, "experiments": {"x": entry}}
    spec = next(iter(expand_experiments(cfg).values()))
    setup = DeviceSetup(torch.device("cpu"), torch.float16, True, True)
    nets = build_model(family, spec)
    init_weights(nets)
    nets.to(memory_format=torch.channels_last)
    recipe = get_family(family).recipe()(spec, nets, setup)
    x = _smooth_batch()
    batch = {"image": x, "cond": torch.eye(6)[:4]} if family == "fastgan" else {"input": x, "target": x}
    out = [recipe.train_step(batch, 0.5) for _ in range(2)]
    assert all(np.isfinite(float(v)) for v in out[-1].values())
    assert recipe.scaler.is_enabled()


class _GPULikeSetup:
    """A CPU device setup that says it is a GPU: the optimizer choice is all this checks."""

    def __new__(cls):
        from spectsynth.device import DeviceSetup

        class Setup(DeviceSetup):
            @property
            def is_cuda(self) -> bool:
                return True

        return Setup(torch.device("cpu"), None, False, False)


@pytest.mark.parametrize("family", ["pix2pix", "fastgan"])
def test_the_optimizer_is_fused_on_a_gpu_and_the_reference_on_the_cpu(family):
    from spectsynth.device import DeviceSetup

    entry, _ = _OVERFIT[family]
    cfg = {"datasets": {k: {"size": 32} for k in ("s0", "s1", "s2")}, "experiments": {"x": entry}}
    spec = next(iter(expand_experiments(cfg).values()))
    cpu = get_family(family).recipe()(spec, build_model(family, spec), DeviceSetup(torch.device("cpu"), None, False, False))
    gpu = get_family(family).recipe()(spec, build_model(family, spec), _GPULikeSetup())
    assert all(not o.defaults.get("fused") for o in cpu.optim.values())
    assert all(o.defaults.get("fused") is True for o in gpu.optim.values())


def test_fastgan_ema_update_is_the_per_tensor_lerp():
    from spectsynth.device import DeviceSetup

    entry, _ = _OVERFIT["fastgan"]
    cfg = {"datasets": {"s1": {"size": 32}}, "experiments": {"x": entry}}
    spec = next(iter(expand_experiments(cfg).values()))
    recipe = get_family("fastgan").recipe()(spec, build_model("fastgan", spec),
                                              DeviceSetup(torch.device("cpu"), None, False, False))
    with torch.no_grad():
        for p in recipe.nets["G"].parameters():
            p.add_(torch.randn_like(p))
    expected = [pe.clone().lerp_(p, 1.0 - float(spec["ema_decay"]))
                for pe, p in zip(recipe.ema.parameters(), recipe.nets["G"].parameters())]
    recipe._update_ema()
    assert all(torch.equal(a, b) for a, b in zip(recipe.ema.parameters(), expected))
