"""A ResNet-18 with torchvision's module layout, written here so no torchvision is needed.

The architecture is the one of He et al., *Deep Residual Learning for Image Recognition*
(CVPR 2016, arXiv 1512.03385), in the layout of ``torchvision.models.resnet18`` (its
documented module tree, not its code): a stem ``conv1`` (7×7, stride 2) → ``bn1`` →
``relu`` → ``maxpool`` (3×3, stride 2), four stages ``layer1`` … ``layer4`` of two
:class:`BasicBlock` each (the first block of stages 2–4 halves the resolution and doubles
the channels, with a 1×1 convolution + batch norm ``downsample`` branch on the skip), then
``avgpool`` (adaptive, to 1×1) and ``fc``.

Each :class:`BasicBlock` owns ONE ``nn.ReLU(inplace=True)`` that its forward calls twice::

    out = relu(bn1(conv1(x)))
    out = relu(bn2(conv2(out)) + downsample(x))     # downsample = identity when absent

so a ResNet has 9 ReLU modules but 17 ReLU calls (recording sites ``layer1.0.relu#0``,
``layer1.0.relu#1``, …). With ``width=64, in_channels=3`` the ``state_dict`` has exactly
torchvision's keys and shapes, so torchvision weights load into it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._util.checks import check_int
from ..errors import ValueInputError

__all__ = ["BasicBlock", "ResNet", "resnet18"]


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    r"""Two 3×3 convolutions with batch norm and a skip connection; one reused ReLU.

    .. math:: y = \mathrm{relu}\big(\mathrm{bn}_2(W_2 * \mathrm{relu}(\mathrm{bn}_1(W_1 * x)))
              + D(x)\big)

    where :math:`D` is ``downsample`` (1×1 convolution of stride *stride* + batch norm)
    when the block changes resolution or width, and the identity otherwise.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    stride : int, default=1
        Stride of the first convolution (2 halves the resolution).
    """

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """A ResNet of :class:`BasicBlock` stages in torchvision's layout.

    Parameters
    ----------
    layers : sequence of int, default=(2, 2, 2, 2)
        Blocks per stage (``(2, 2, 2, 2)`` is ResNet-18, ``(3, 4, 6, 3)`` ResNet-34).
    num_classes : int, default=1000
        Outputs of ``fc``.
    in_channels : int, default=3
        Input image channels.
    width : int, default=64
        Channels of the stem and of stage 1; stage *s* has ``width · 2^(s-1)`` channels
        (torchvision: 64).
    zero_init_residual : bool, default=False
        Start every block's last batch-norm scale at 0, so each block begins as the
        identity (Goyal et al. 2017, arXiv 1706.02677; torchvision's option of that name).

    Notes
    -----
    Initialisation follows torchvision: convolutions He-normal with ``mode="fan_out"``
    (He et al. 2015, arXiv 1502.01852), batch-norm scales 1 and shifts 0, ``fc`` PyTorch's
    default ``Linear`` init.
    """

    def __init__(
        self,
        layers: Sequence[int] = (2, 2, 2, 2),
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        width: int = 64,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or not layers:
            raise ValueInputError(f"`layers` must be a non-empty sequence of block counts, got {layers!r}.")
        blocks = [check_int(f"layers[{i}]", n, minimum=1) for i, n in enumerate(layers)]
        num_classes = check_int("num_classes", num_classes, minimum=1)
        in_channels = check_int("in_channels", in_channels, minimum=1)
        width = check_int("width", width, minimum=1)
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = width
        for stage, n_blocks in enumerate(blocks):
            out_channels = width * 2**stage
            stride = 1 if stage == 0 else 2
            stage_blocks = [BasicBlock(channels, out_channels, stride)]
            stage_blocks += [BasicBlock(out_channels, out_channels) for _ in range(n_blocks - 1)]
            self.add_module(f"layer{stage + 1}", nn.Sequential(*stage_blocks))
            channels = out_channels
        self.n_stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in range(1, self.n_stages + 1):
            x = getattr(self, f"layer{stage}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(*, num_classes: int = 1000, in_channels: int = 3, width: int = 64,
             zero_init_residual: bool = False) -> ResNet:
    """ResNet-18 (He et al. 2016, arXiv 1512.03385) in torchvision's layout, randomly initialised.

    >>> import torch, relu_probe as rp
    >>> from relu_probe.testing import resnet18
    >>> model = resnet18(num_classes=10, width=8)
    >>> len(rp.list_sites(model, torch.zeros(2, 3, 32, 32)))
    17
    """
    return ResNet((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels, width=width,
                  zero_init_residual=zero_init_residual)
