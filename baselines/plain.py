"""The independent per-level networks of the HyperRes tables.

`plain` is the main network HyperRes generates for one level, with ordinary convs (it is also the
AdaFM basic model: 1,406,787 parameters in RGB). `perlevel` is a bank holding one plain network per
training level; `model(x, level)` runs the network trained for that level (the nearest trained
level when asked for another one, which the evaluation records as the input level).
"""

from pathlib import Path

from torch import nn

from bench.models.bank import PerLevelBank
from bench.models.layers import Head, ResBlock, Tail, check_input, kaiming_scaled_init
from bench.models.registry import register_model

_ORIGIN = dict(
    paper="Aharon & Ben-Artzi, HyperRes (arXiv 2206.05970), Tables 1-3 baseline; same as the AdaFM basic model (He et al., CVPR 2019)",
    licence="as HyperRes (GPL-3.0 at its head, MIT at cb41fd8); hejingwenhejingwen/AdaFM has no licence file or statement (64a8fe9)",
    origin="https://github.com/hejingwenhejingwen/AdaFM (codes/models/modules/architecture.py, norm_type basic)",
    recipe=str(Path(__file__).with_name("recipes") / "perlevel.yaml"),
)


class PlainResNet(nn.Module):
    """Stride-2 head, `blocks` plain res blocks, LR conv + global skip, pixel-shuffle tail. Ignores level."""

    def __init__(self, blocks: int = 16, width: int = 64, in_channels: int = 3):
        super().__init__()
        self.in_channels = in_channels
        self.head = Head(in_channels, width)
        self.blocks = nn.Sequential(*(ResBlock(width) for _ in range(blocks)))
        self.tail = Tail(width, in_channels)
        kaiming_scaled_init(self)

    def forward(self, x, level=None):
        check_input(x, self.in_channels, "plain network")
        skip = self.head(x)
        return self.tail(self.blocks(skip), skip)


_PLAIN_COUNTS = [
    {"kwargs": {"blocks": 16, "in_channels": 3}, "params": 1_406_787, "source": "hejingwenhejingwen/AdaFM basic model; ifryed/HyperRes generated main net"},
    {"kwargs": {"blocks": 16, "in_channels": 1}, "params": 1_404_481, "source": "hejingwenhejingwen/AdaFM basic model, in/out 1 (no official config)"},
]


@register_model(family="plain", tasks=("denoise", "dejpeg", "sr"), adaptive=False, protocol="joint",
                official_counts=_PLAIN_COUNTS, test_kwargs={"blocks": 2, "width": 8}, **_ORIGIN)
def plain(blocks: int = 16, width: int = 64, in_channels: int = 3):
    return PlainResNet(blocks=blocks, width=width, in_channels=in_channels)


@register_model(
    family="plain", tasks=("denoise", "dejpeg", "sr"), adaptive=False, protocol="bank",
    official_counts=[{"kwargs": {"levels": [15.0], "blocks": 16, "in_channels": 3}, "params": 1_406_787,
                      "source": "one 1,406,787-parameter network per level (HyperRes Tables 1-3 baseline)"}],
    test_kwargs={"levels": [15.0, 50.0], "blocks": 2, "width": 8},
    notes="independent per-level networks: 11 for denoising, 8 for deJPEG, 5 for SR in the paper",
    **_ORIGIN,
)
def perlevel(levels=(15.0,), blocks: int = 16, width: int = 64, in_channels: int = 3):
    return PerLevelBank(levels, lambda: PlainResNet(blocks=blocks, width=width, in_channels=in_channels))
