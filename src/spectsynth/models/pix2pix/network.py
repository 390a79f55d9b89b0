"""pix2pix (Isola et al. 2017) as used by S2 and S3: U-Net generator and PatchGAN discriminator.

The U-Net follows the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix,
``UnetGenerator``): 4 x 4 stride-2 convolutions down to 1 x 1, batch norm, LeakyReLU 0.2 on
the way down, ReLU on the way up, dropout 0.5 in the innermost ``ngf*8`` decoder blocks, skip
connections by concatenation, tanh output.  The number of down-sampling steps is the option
``generator_depth``; by default ``log2(size)``, at most 8 (5 for 32 px, 8 for 256 px as in the
reference).  The discriminator is the
70 x 70 PatchGAN (``n_layers = 3``) fed with input and (real or generated) target
concatenated along the channels.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ...losses import log2_int


class UnetBlock(nn.Module):
    """One level of the U-Net: down-convolution, the inner levels, up-convolution, skip."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, *, outermost: bool = False,
                 innermost: bool = False, use_dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, 2, 1, bias=False)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = nn.BatchNorm2d(inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = nn.BatchNorm2d(outer_nc)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1)
            model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=False)
            model = [downrelu, downconv, uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=False)
            model = [downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm]
            if use_dropout:
                model.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net generator mapping (N, in_channels, S, S) to (N, out_channels, S, S) in (-1, 1)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, size: int = 256, *,
                 ngf: int = 64, use_dropout: bool = True, depth: int | None = None):
        super().__init__()
        most = log2_int(size)
        if most < 5:
            raise ValueError(f"the U-Net needs slices of at least 32 px, got {size}")
        num_downs = min(most, 8) if depth is None else int(depth)
        if not 5 <= num_downs <= most:
            raise ValueError(f"generator_depth {num_downs}: the U-Net halves the slice that often, so it must "
                             f"lie between 5 and log2({size}) = {most}; set it so or leave it null (automatic)")
        self.depth = num_downs
        block = UnetBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=use_dropout)
        block = UnetBlock(ngf * 4, ngf * 8, submodule=block)
        block = UnetBlock(ngf * 2, ngf * 4, submodule=block)
        block = UnetBlock(ngf, ngf * 2, submodule=block)
        self.model = UnetBlock(out_channels, ngf, input_nc=in_channels, submodule=block, outermost=True)
        self.size = size  # above 256 px the bottleneck stays larger than 1 x 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator: one real/fake logit per overlapping patch."""

    def __init__(self, in_channels: int = 2, *, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=False),
                    nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2 ** n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=False),
                nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True),
                nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*seq)

    def forward(self, inp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([inp, target], 1))


def build(family: str, cfg) -> nn.ModuleDict:
    """``{"G": UnetGenerator, "D": PatchDiscriminator}`` for a resolved spec."""
    from ..registry import network_inputs
    from . import DEFAULTS

    size, n_in, n_out, opt = network_inputs(cfg, DEFAULTS)
    g = UnetGenerator(n_in, n_out, size, ngf=opt("ngf"), use_dropout=bool(opt("use_dropout")),
                      depth=opt("generator_depth"))
    d = PatchDiscriminator(n_in + n_out, ndf=opt("ndf"), n_layers=opt("n_layers"))
    return nn.ModuleDict({"G": g, "D": d})
