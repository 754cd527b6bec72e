"""Hand-weighted toy models whose gates are known exactly.

Every model maps a 4-feature input through fixed integer weights, so the pre-activation of
each ReLU — and therefore its gate — is computed independently in numpy by
``expected_gates(x)``, which returns ``{site name: (n_samples, n_units) bool array}``.
The same computation is written in every ReLU call style relu_probe must see.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "A_WEIGHTS",
    "B_WEIGHTS",
    "FUNCTIONAL_STYLES",
    "toy_inputs",
    "SequentialReLUNet",
    "InplaceReLUNet",
    "ReusedReLUNet",
    "FunctionalReLUNet",
    "ModuleListNet",
    "LeakyReLUNet",
    "NestedMixedNet",
    "ToyConvNet",
    "ToySequenceNet",
    "NoReLUNet",
    "FailingNet",
]

#: First-layer weights (3 units × 4 inputs) and second-layer weights (2 × 3).
A_WEIGHTS = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 1.0, 1.0, -2.0], [-1.0, 0.0, 2.0, 1.0]])
B_WEIGHTS = np.array([[1.0, -1.0, 1.0], [-1.0, 2.0, -1.0]])

#: Every functional ReLU call style recognised by the recorder.
FUNCTIONAL_STYLES = ("F.relu", "F.relu_inplace", "torch.relu", "torch.relu_", "Tensor.relu", "Tensor.relu_")


def toy_inputs(n: int = 32, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Integer-valued inputs ``(n, 4)`` in [-3, 3], so no pre-activation is a float near 0."""
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.integers(-3, 4, size=(n, 4)), dtype=dtype)


def _linear(weights: np.ndarray) -> nn.Linear:
    layer = nn.Linear(weights.shape[1], weights.shape[0], bias=False).to(torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weights))
    return layer


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float64)


def _two_layer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pre-activations of the A → ReLU → B → ReLU stack."""
    z1 = x @ A_WEIGHTS.T
    z2 = np.maximum(z1, 0) @ B_WEIGHTS.T
    return z1, z2


def _apply_functional(x: torch.Tensor, style: str) -> torch.Tensor:
    if style == "F.relu":
        return F.relu(x)
    if style == "F.relu_inplace":
        return F.relu(x, inplace=True)
    if style == "torch.relu":
        return torch.relu(x)
    if style == "torch.relu_":
        return torch.relu_(x)
    if style == "Tensor.relu":
        return x.relu()
    if style == "Tensor.relu_":
        return x.relu_()
    raise ValueError(f"unknown functional style {style!r}; expected one of {FUNCTIONAL_STYLES}")


class SequentialReLUNet(nn.Sequential):
    """``Linear(A) → ReLU → Linear(B) → ReLU → Linear``; sites ``"1"`` and ``"3"``."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(
            _linear(A_WEIGHTS), nn.ReLU(inplace=inplace), _linear(B_WEIGHTS), nn.ReLU(inplace=inplace),
            _linear(np.ones((1, 2))),
        )

    @staticmethod
    def expected_gates(x: torch.Tensor) -> dict[str, np.ndarray]:
        z1, z2 = _two_layer(_np(x))
        return {"1": z1 > 0, "3": z2 > 0}

    @staticmethod
    def expected_values(x: torch.Tensor) -> dict[str, np.ndarray]:
        z1, z2 = _two_layer(_np(x))
        return {"1": np.maximum(z1, 0), "3": np.maximum(z2, 0)}


class InplaceReLUNet(SequentialReLUNet):
    """:class:`SequentialReLUNet` with ``nn.ReLU(inplace=True)`` — the in-place trap."""

    def __init__(self) -> None:
        super().__init__(inplace=True)


class ReusedReLUNet(nn.Module):
    """One ``nn.ReLU`` module called twice: sites ``"act#0"`` and ``"act#1"``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = _linear(A_WEIGHTS)
        self.fc2 = _linear(B_WEIGHTS)
        self.act = nn.ReLU()
        self.out = _linear(np.ones((1, 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.fc2(self.act(self.fc1(x)))))

    @staticmethod
    def expected_gates(x: torch.Tensor) -> dict[str, np.ndarray]:
        z1, z2 = _two_layer(_np(x))
        return {"act#0": z1 > 0, "act#1": z2 > 0}


class _FunctionalBlock(nn.Module):
    def __init__(self, style: str) -> None:
        super().__init__()
        self.style = style
        self.fc1 = _linear(A_WEIGHTS)
        self.fc2 = _linear(B_WEIGHTS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _apply_functional(self.fc1(x), self.style)
        return _apply_functional(self.fc2(h), self.style)


class FunctionalReLUNet(nn.Module):
    """Two functional ReLUs of one *style* inside submodule ``block``:
    sites ``"block::relu#0"`` and ``"block::relu#1"``; a third at the root (``"::relu#0"``)
    on the output."""

    def __init__(self, style: str = "F.relu") -> None:
        super().__init__()
        if style not in FUNCTIONAL_STYLES:
            raise ValueError(f"unknown functional style {style!r}; expected one of {FUNCTIONAL_STYLES}")
        self.style = style
        self.block = _FunctionalBlock(style)
        self.out = _linear(np.array([[1.0, -1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _apply_functional(self.out(self.block(x)), self.style)

    @staticmethod
    def expected_gates(x: torch.Tensor) -> dict[str, np.ndarray]:
        z1, z2 = _two_layer(_np(x))
        z3 = np.maximum(z2, 0) @ np.array([[1.0, -1.0]]).T
        return {"block::relu#0": z1 > 0, "block::relu#1": z2 > 0, "::relu#0": z3 > 0}


class ModuleListNet(nn.Module):
    """``ModuleList`` of (Linear, ReLU) pairs iterated in a custom forward: sites
    ``"layers.1"`` and ``"layers.3"``."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([_linear(A_WEIGHTS), nn.ReLU(), _linear(B_WEIGHTS), nn.ReLU()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x.sum(dim=1, keepdim=True)

    @staticmethod
    def expected_gates(x: torch.Tensor) -> dict[str, np.ndarray]:
        z1, z2 = _two_layer(_np(x))
        return {"layers.1": z1 > 0, "layers.3": z2 > 0}


class LeakyReLUNet(nn.Sequential):
    """``Linear(A) → LeakyReLU(0.1) → Linear``: the gate is still ``input > 0``; site ``"1"``."""

    def __init__(self) -> None:
        super().__init__(_linear(A_WEIGHTS), nn.LeakyReLU(0.1), _linear(np.ones((1, 3))))

    @staticmethod
    def expected_gates(x: torch.Tensor) -> dict[str, np.ndarray]:
        z1 = _np(x) @ A_WEIGHTS.T
        return {"1": z1 > 0}

    @staticmethod
    def expected_values(x: torch.Tensor) -> dict[str, np.ndarray]:
        z1 = _np(x) @ A_WEIGHTS.T
        return {"1": np.where(z1 > 0, z1, 0.1 * z1)}


class _MixedBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = _linear(np.eye(3))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        a = F.relu(h - 1.0)          # functional: "block#k::relu#0", gate h > 1
        return self.act(h) + a       # module: "block.act#k", gate h > 0


class NestedMixedNet(nn.Module):
    """A module ReLU and a functional ReLU inside a block that is called twice.

    Sites in order: ``"fc_act"`` (module at top), ``"block#0::relu#0"``, ``"block.act#0"``,
    ``"block#1::relu#0"``, ``"block.act#1"``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fc = _linear(A_WEIGHTS)
        self.fc_act = nn.ReLU()
        self.block = _MixedBlock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc_act(self.fc(x))
        return self.block(self.block(h)).sum(dim=1)

    @staticmethod
    def expected_gates(x: torch.Tensor) -> dict[str, np.ndarray]:
        z1 = _np(x) @ A_WEIGHTS.T
        h = np.maximum(z1, 0)
        h1 = np.maximum(h, 0) + np.maximum(h - 1.0, 0)
        return {
            "fc_act": z1 > 0,
            "block#0::relu#0": h > 1.0,
            "block.act#0": h > 0,
            "block#1::relu#0": h1 > 1.0,
            "block.act#1": h1 > 0,
        }


#: 2×2 kernels of the toy conv (2 output channels, 1 input channel).
CONV_KERNELS = np.array([[[[1.0, -1.0], [0.0, 1.0]]], [[[-1.0, 0.0], [1.0, 1.0]]]])


class ToyConvNet(nn.Module):
    """``Conv2d(1→2, 2×2, no padding) → ReLU(inplace) → Flatten → Linear`` on 1×3×3 images.

    Site ``"act"`` has 2 channels × 4 positions. The input is ``x[:, :4]`` padded with the
    first 5 features of ``x`` reversed — any (n, 9) tensor works; use :meth:`images`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 2, bias=False).to(torch.float64)
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(CONV_KERNELS))
        self.act = nn.ReLU(inplace=True)
        self.flat = nn.Flatten()
        self.head = _linear(np.ones((1, 8)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.flat(self.act(self.conv(x))))

    @staticmethod
    def images(n: int = 16, seed: int = 0) -> torch.Tensor:
        """Integer images ``(n, 1, 3, 3)`` in [-3, 3]."""
        rng = np.random.default_rng(seed)
        return torch.tensor(rng.integers(-3, 4, size=(n, 1, 3, 3)), dtype=torch.float64)

    @staticmethod
    def pre_activation(x: torch.Tensor) -> np.ndarray:
        """Valid 2×2 cross-correlation by hand: ``(n, 2, 2, 2)``."""
        img = _np(x)[:, 0]
        out = np.zeros((img.shape[0], 2, 2, 2))
        for c in range(2):
            for i in range(2):
                for j in range(2):
                    out[:, c, i, j] = (img[:, i : i + 2, j : j + 2] * CONV_KERNELS[c, 0]).sum(axis=(1, 2))
        return out

    @classmethod
    def expected_gates(cls, x: torch.Tensor) -> dict[str, np.ndarray]:
        z = cls.pre_activation(x)
        return {"act": (z > 0).reshape(len(z), -1)}

    @classmethod
    def expected_gate_rate(cls, x: torch.Tensor) -> dict[str, np.ndarray]:
        z = cls.pre_activation(x)
        return {"act": (z > 0).reshape(len(z), 2, -1).mean(axis=2)}


class ToySequenceNet(nn.Module):
    """Tokens ``(n, T, 4)`` → ``Linear(A)`` → ReLU: a channel-last sequence site ``"act"``
    with T positions × 3 channels (element units in the tensor's own order, position-major:
    unit ``3 t + c`` is channel ``c`` at position ``t``)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = _linear(A_WEIGHTS)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x)).sum(dim=(1, 2))

    @staticmethod
    def tokens(n: int = 8, length: int = 5, seed: int = 0) -> torch.Tensor:
        rng = np.random.default_rng(seed)
        return torch.tensor(rng.integers(-3, 4, size=(n, length, 4)), dtype=torch.float64)

    @staticmethod
    def expected_gates(x: torch.Tensor) -> dict[str, np.ndarray]:
        z = _np(x) @ A_WEIGHTS.T  # (n, T, C)
        return {"act": (z > 0).reshape(len(z), -1)}

    @staticmethod
    def expected_token_gates(x: torch.Tensor) -> np.ndarray:
        """Gates ``(n · T, 3)`` with one row per (input, position), inputs in order."""
        z = _np(x) @ A_WEIGHTS.T
        return (z > 0).reshape(-1, z.shape[-1])

    @staticmethod
    def expected_gate_rate(x: torch.Tensor) -> dict[str, np.ndarray]:
        z = _np(x) @ A_WEIGHTS.T
        return {"act": (z > 0).mean(axis=1)}


class NoReLUNet(nn.Sequential):
    """``Linear → Tanh → Linear``: no ReLU site at all."""

    def __init__(self) -> None:
        super().__init__(_linear(A_WEIGHTS), nn.Tanh(), _linear(B_WEIGHTS))


class FailingNet(SequentialReLUNet):
    """:class:`SequentialReLUNet` whose forward raises ``ValueError`` after the first ReLU
    when any input in the batch has ``x[:, 0] == 99``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self[1](self[0](x))
        if bool((x[:, 0] == 99).any()):
            raise ValueError("poisoned sample")
        return self[4](self[3](self[2](h)))
