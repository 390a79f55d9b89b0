"""Conditional FastGAN of S1 (Werner et al. 2022), for 32-256 px single-channel slices.

Generator (S1 Fig. 1): latent vector (256, standard normal) concatenated with the condition
vector -> fully connected layer (embedding of ``embed_dim`` = 64) -> input block (4 x 4
transposed convolution, batch norm, GLU) -> up-sampling blocks (nearest x2, 3 x 3 conv, batch
norm, GLU) -> output block (3 x 3 conv, tanh).  ONE skip-layer excitation (S1 Fig. 2) gates the
last up-sampled feature map with channel weights computed from the 4 x 4 input-block map
(4 x 4 conv without padding, LeakyReLU 0.1, 1 x 1 conv, sigmoid); the 4 x 4 map makes
FastGAN's adaptive pooling unnecessary, as S1 notes.

Discriminator (S1 Fig. 3): the image concatenated with the conditional image (one channel per
element of the condition vector, all 0 or 1) -> input block (to 32 x 32) -> three
down-sampling blocks (32 -> 16 -> 8 -> 4) -> output block (1 x 1 conv, batch norm, LeakyReLU,
4 x 4 conv) giving one real/fake logit.  Two simple decoders (up-sampling blocks with GLU, as
FastGAN's) rebuild a random half-size crop from the 2nd down-sampling block's map (8 x 8, crop
4 x 4) and the whole image from the 3rd's (4 x 4), for S1's Eq. 4 reconstruction loss.
Spectral normalisation on every convolution and linear layer follows the FastGAN reference.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from ...losses import log2_int

LATENT_DIM = 256
EMBED_DIM = 64


def _sn(module: nn.Module, enabled: bool) -> nn.Module:
    return spectral_norm(module) if enabled else module


def condition_image(cond: torch.Tensor, size: int) -> torch.Tensor:
    """(N, K) condition vectors -> (N, K, size, size) conditional image of constant 0/1 channels."""
    return cond[:, :, None, None].expand(-1, -1, size, size)


class SkipLayerExcitation(nn.Module):
    """FastGAN's skip-layer excitation: channel gates for a large map from a 4 x 4 map."""

    def __init__(self, ch_small: int, ch_large: int, sn: bool = True):
        super().__init__()
        self.gate = nn.Sequential(
            _sn(nn.Conv2d(ch_small, ch_large, 4, 1, 0, bias=False), sn),
            nn.LeakyReLU(0.1),
            _sn(nn.Conv2d(ch_large, ch_large, 1, 1, 0, bias=False), sn),
            nn.Sigmoid(),
        )

    def forward(self, small: torch.Tensor, large: torch.Tensor) -> torch.Tensor:
        return large * self.gate(small)


def _up_block(cin: int, cout: int, sn: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        _sn(nn.Conv2d(cin, cout * 2, 3, 1, 1, bias=False), sn),
        nn.BatchNorm2d(cout * 2),
        nn.GLU(dim=1),
    )


def _channels(size: int, res: int, base: int, max_ch: int) -> int:
    return int(min(max_ch, base * (size // res)))


class Generator(nn.Module):
    """Conditional FastGAN generator: ``G(z | y)`` -> (N, 1, size, size) in (-1, 1)."""

    def __init__(self, size: int = 64, n_cond: int = 6, *, latent_dim: int = LATENT_DIM,
                 embed_dim: int = EMBED_DIM, base_channels: int = 16, max_channels: int = 512,
                 out_channels: int = 1, spectral: bool = True):
        super().__init__()
        k = log2_int(size)
        if size < 32:
            raise ValueError(f"FastGAN needs slices of at least 32 px, got {size}")
        self.size, self.n_cond, self.latent_dim = size, n_cond, latent_dim
        ch = {2 ** i: _channels(size, 2 ** i, base_channels, max_channels) for i in range(2, k + 1)}
        self.fc = _sn(nn.Linear(latent_dim + n_cond, embed_dim), spectral)
        self.init = nn.Sequential(
            _sn(nn.ConvTranspose2d(embed_dim, ch[4] * 2, 4, 1, 0, bias=False), spectral),
            nn.BatchNorm2d(ch[4] * 2),
            nn.GLU(dim=1),
        )
        self.ups = nn.ModuleList(_up_block(ch[2 ** (i - 1)], ch[2 ** i], spectral) for i in range(3, k + 1))
        self.sle = SkipLayerExcitation(ch[4], ch[size], spectral)
        self.out = nn.Sequential(_sn(nn.Conv2d(ch[size], out_channels, 3, 1, 1, bias=False), spectral),
                                 nn.Tanh())

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, cond.to(z.dtype)], dim=1))
        f4 = self.init(h[:, :, None, None])
        f = f4
        for up in self.ups:
            f = up(f)
        f = self.sle(f4, f)
        return self.out(f)


class SimpleDecoder(nn.Module):
    """FastGAN's simple decoder: 4 x 4 feature map -> image of ``out_size`` px (tanh)."""

    def __init__(self, cin: int, out_size: int, base: int = 16, out_channels: int = 1, sn: bool = True):
        super().__init__()
        n_up = log2_int(out_size) - 2
        layers: list[nn.Module] = []
        c = cin
        for i in range(n_up):
            cout = max(base, cin // (2 ** (i + 1)))
            layers.append(_up_block(c, cout, sn))
            c = cout
        layers += [_sn(nn.Conv2d(c, out_channels, 3, 1, 1, bias=False), sn), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)


class Discriminator(nn.Module):
    """Conditional FastGAN discriminator with the two self-supervised decoders."""

    def __init__(self, size: int = 64, n_cond: int = 6, *, base_channels: int = 16,
                 max_channels: int = 512, in_channels: int = 1, recon_size: int | None = None,
                 spectral: bool = True):
        super().__init__()
        k = log2_int(size)
        if size < 32:
            raise ValueError(f"FastGAN needs slices of at least 32 px, got {size}")
        self.size, self.n_cond = size, n_cond
        self.recon_size = int(recon_size or min(size, 64))
        log2_int(self.recon_size)
        ch = {2 ** i: _channels(size, 2 ** i, base_channels, max_channels) for i in range(2, k + 1)}
        cin = in_channels + n_cond
        stem: list[nn.Module] = []
        if size == 32:
            stem += [_sn(nn.Conv2d(cin, ch[32], 3, 1, 1, bias=False), spectral), nn.LeakyReLU(0.2)]
        else:
            res, c = size, cin
            while res > 32:
                res //= 2
                stem.append(_sn(nn.Conv2d(c, ch[res], 4, 2, 1, bias=False), spectral))
                if c != cin:
                    stem.append(nn.BatchNorm2d(ch[res]))
                stem.append(nn.LeakyReLU(0.2))
                c = ch[res]
        self.stem = nn.Sequential(*stem)

        def down(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(_sn(nn.Conv2d(a, b, 4, 2, 1, bias=False), spectral),
                                 nn.BatchNorm2d(b), nn.LeakyReLU(0.2))

        self.down1 = down(ch[32], ch[16])
        self.down2 = down(ch[16], ch[8])   # B1: 8 x 8
        self.down3 = down(ch[8], ch[4])    # B2: 4 x 4
        self.logits = nn.Sequential(
            _sn(nn.Conv2d(ch[4], ch[4], 1, 1, 0, bias=False), spectral),
            nn.BatchNorm2d(ch[4]), nn.LeakyReLU(0.2),
            _sn(nn.Conv2d(ch[4], 1, 4, 1, 0, bias=False), spectral),
        )
        self.dec_part = SimpleDecoder(ch[8], self.recon_size, base=max(8, base_channels), sn=spectral)
        self.dec_whole = SimpleDecoder(ch[4], self.recon_size, base=max(8, base_channels), sn=spectral)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, crop: tuple[int, int] | None = None):
        """Logits (N,); with ``crop=(row, col)`` (offsets 0..4 on the 8 x 8 map of the 2nd
        down-sampling block) also the decoded whole image and decoded crop."""
        h = torch.cat([x, condition_image(cond.to(x.dtype), x.shape[-1])], dim=1)
        f32 = self.stem(h)
        f16 = self.down1(f32)
        b1 = self.down2(f16)
        b2 = self.down3(b1)
        logits = self.logits(b2).flatten(1).mean(1)
        if crop is None:
            return logits
        r, c = crop
        part = b1[:, :, r:r + 4, c:c + 4]
        return logits, self.dec_whole(b2), self.dec_part(part)


def crop_in_pixels(crop: tuple[int, int], size: int) -> tuple[int, int]:
    """Feature-map crop offset (on the 8 x 8 map) -> top-left pixel of the half-size image crop."""
    return crop[0] * size // 8, crop[1] * size // 8


def random_crop(generator: torch.Generator | None = None) -> tuple[int, int]:
    """A random 4 x 4 crop offset on the 8 x 8 map (0..4 in each direction)."""
    rc = torch.randint(0, 5, (2,), generator=generator)
    return int(rc[0]), int(rc[1])


def sample_latent(n: int, latent_dim: int = LATENT_DIM, *, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard-normal latent vectors (drawn on the CPU so CPU and GPU runs share them)."""
    return torch.randn(n, latent_dim, generator=generator).to(device)


def upsample_like(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize to ``size`` px (a no-op when already that size)."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def build(family: str, cfg) -> nn.ModuleDict:
    """``{"G": Generator, "D": Discriminator}`` for a resolved spec (the EMA copy of G is the
    recipe's)."""
    from ...labels import LEVELS, PATTERNS
    from ..registry import network_inputs
    from . import DEFAULTS

    size, _, n_out, opt = network_inputs(cfg, DEFAULTS)
    n_cond = int((cfg.get("condition") or {}).get("n_cond", len(LEVELS) + len(PATTERNS)))
    g = Generator(size, n_cond, latent_dim=opt("latent_dim"), embed_dim=opt("embed_dim"),
                  base_channels=opt("base_channels"), max_channels=opt("max_channels"),
                  out_channels=n_out, spectral=bool(opt("spectral_norm")))
    d = Discriminator(size, n_cond, base_channels=opt("base_channels"),
                      max_channels=opt("max_channels"), in_channels=n_out,
                      spectral=bool(opt("spectral_norm")))
    return nn.ModuleDict({"G": g, "D": d})
