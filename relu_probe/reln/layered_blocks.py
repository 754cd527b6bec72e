r"""The weights of a layered GDLN and the full-batch gradient step that trains them (the graph
and the formulas are in :mod:`relu_probe.reln.layered`).

Each hidden layer's blocks are concatenated into one vector of units, so layer :math:`\ell`'s
weights are one matrix :math:`W_\ell` (rows: the layer's units, block after block; columns:
the previous layer's units or the inputs) whose entries outside the graph's edges (the input
masks at layer 1, the edge masks above) are zero and stay zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ValueInputError
from .layered import LayeredSpec

__all__ = ["LayeredBlocks", "layered_step"]


class LayeredBlocks:
    r"""Weights, biases, masks and unit gates of a :class:`~relu_probe.reln.layered.LayeredSpec`.

    Weights are drawn from :math:`\mathcal N(0, \sigma_\ell^2)` layer by layer, input side first
    (``init_scales``), masked to the graph; biases from :math:`\mathcal N(0, \sigma_b^2)`
    (``bias_init_scale``; zeros when it is 0), after all weights.
    """

    def __init__(
        self,
        spec: LayeredSpec,
        n_out: int,
        gates: list[np.ndarray],
        generator: torch.Generator | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.spec = spec
        self.dtype, self.device = dtype, device
        self.n_in, self.n_out = spec.inputs.shape[1], n_out
        widths = [list(w) for w in spec.widths]
        self.offsets = [np.concatenate([[0], np.cumsum(w)]).astype(int) for w in widths]
        sizes = [self.n_in] + [int(sum(w)) for w in widths] + [n_out]
        masks: list[torch.Tensor | None] = []
        first = np.repeat(spec.inputs, widths[0], axis=0)  # (H_1, n_in)
        masks.append(None if first.all() else torch.as_tensor(first, dtype=dtype))
        for l, edge in enumerate(spec.edges):
            block = np.repeat(np.repeat(edge, widths[l + 1], axis=0), widths[l], axis=1)
            masks.append(None if block.all() else torch.as_tensor(block, dtype=dtype))
        masks.append(None)
        self.weights: list[torch.Tensor] = []
        for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            W = torch.randn(b, a, generator=generator, dtype=dtype) * spec.init_scales[l]
            if masks[l] is not None:
                W.mul_(masks[l])
            self.weights.append(W.to(device))
        self.masks = [None if m is None else m.to(device) for m in masks]
        self.biases: list[torch.Tensor | None] = [
            self._bias((sizes[l + 1],), generator) if spec.hidden_bias[l] else None for l in range(spec.n_layers)
        ]
        self.output_bias = self._bias((n_out,), generator) if spec.output_bias else None
        self.unit_gates: list[torch.Tensor] = []
        self.set_gates(gates)

    def set_gates(self, gates: list[np.ndarray]) -> None:
        """Use these per-layer (pathway, sample) effective gates from now on (each unit takes
        its block's gate)."""
        self.unit_gates = [
            torch.as_tensor(np.repeat(G, self.spec.widths[l], axis=0).T.copy(), dtype=self.dtype, device=self.device)
            for l, G in enumerate(gates)
        ]

    def _bias(self, shape: tuple[int, ...], generator: Any) -> torch.Tensor:
        scale = self.spec.bias_init_scale
        out = torch.zeros(shape, dtype=self.dtype) if scale == 0.0 else (
            torch.randn(shape, generator=generator, dtype=self.dtype) * scale)
        return out.to(self.device)

    def block(self, layer: int, q: int, p: int | None = None) -> torch.Tensor:
        """Weight block from block *p* of the layer below (or the inputs, ``p=None``, at layer
        0) into block *q* of hidden layer *layer* (0-based)."""
        rows = slice(int(self.offsets[layer][q]), int(self.offsets[layer][q + 1]))
        W = self.weights[layer]
        if p is None:
            return W[rows]
        cols = slice(int(self.offsets[layer - 1][p]), int(self.offsets[layer - 1][p + 1]))
        return W[rows, cols]

    def path_maps(self) -> torch.Tensor:
        """(path, output, design feature) maps of every end-to-end path (module docstring of
        :mod:`relu_probe.reln.layered`), built left to right so that every prefix is multiplied
        once."""
        spec = self.spec
        first = self.weights[0]
        if spec.hidden_bias[0]:
            first = torch.cat([first, self.biases[0][:, None]], dim=1)
        prefix: dict[tuple[int, ...], torch.Tensor] = {}
        for p in range(spec.layers[0].n_pathways):
            prefix[(p,)] = first[int(self.offsets[0][p]):int(self.offsets[0][p + 1])]
        for l in range(1, spec.n_layers):
            nxt = {}
            for chain, value in prefix.items():
                for q in np.flatnonzero(spec.edges[l - 1][:, chain[-1]]).tolist():
                    nxt[chain + (q,)] = self.block(l, q, chain[-1]) @ value
            prefix = nxt
        last = self.weights[-1]
        off = self.offsets[-1]
        return torch.stack([last[:, int(off[c[-1]]):int(off[c[-1] + 1])] @ prefix[c] for c in spec.paths])

    def load(self, weights: list[np.ndarray], biases: list[np.ndarray | None] | None,
             output_bias: np.ndarray | None) -> None:
        """Set the weights (one matrix per weight layer, as :meth:`numpy_weights` returns them;
        entries outside the graph are set to 0) and the biases."""
        if len(weights) != len(self.weights):
            raise ValueInputError(f"`weights_` must hold {len(self.weights)} matrices, got {len(weights)}.")
        for l, (W, new) in enumerate(zip(self.weights, weights)):
            value = torch.as_tensor(np.asarray(new), dtype=self.dtype, device=self.device)
            if value.shape != W.shape:
                raise ValueInputError(f"`weights_[{l}]` must have shape {tuple(W.shape)}, got {tuple(value.shape)}.")
            W.copy_(value if self.masks[l] is None else value * self.masks[l])
        for b, new in zip(self.biases, biases or [None] * len(self.biases)):
            if b is not None and new is not None:
                b.copy_(torch.as_tensor(np.asarray(new), dtype=self.dtype, device=self.device))
        if self.output_bias is not None and output_bias is not None:
            self.output_bias.copy_(torch.as_tensor(np.asarray(output_bias), dtype=self.dtype, device=self.device))

    def numpy_weights(self) -> list[np.ndarray]:
        """The weight matrices (input side first) as numpy copies."""
        return [W.detach().cpu().numpy().copy() for W in self.weights]

    def numpy_biases(self) -> list[np.ndarray | None]:
        return [None if b is None else b.detach().cpu().numpy().copy() for b in self.biases]


def layered_step(blocks: LayeredBlocks, X: torch.Tensor, Y: torch.Tensor, lr: float, losses: torch.Tensor,
                 epoch: int) -> None:
    r"""One full-batch gradient-descent step of every weight and bias (formulas in
    :mod:`relu_probe.reln.layered`); the loss before the update goes to ``losses[epoch]``."""
    acts = [X]
    for W, b, Gu in zip(blocks.weights[:-1], blocks.biases, blocks.unit_gates):
        z = acts[-1] @ W.T
        if b is not None:
            z = z + b
        acts.append(z.mul_(Gu))
    Yhat = acts[-1] @ blocks.weights[-1].T
    if blocks.output_bias is not None:
        Yhat = Yhat + blocks.output_bias
    E = Yhat - Y
    flat = E.reshape(-1)
    losses[epoch] = 0.5 * torch.dot(flat, flat)
    updates: list[tuple[torch.Tensor, torch.Tensor]] = [(blocks.weights[-1], E.T @ acts[-1])]
    if blocks.output_bias is not None:
        updates.append((blocks.output_bias, E.sum(0)))
    delta = (E @ blocks.weights[-1]).mul_(blocks.unit_gates[-1])
    for l in range(len(blocks.biases) - 1, -1, -1):
        gW = delta.T @ acts[l]
        if blocks.masks[l] is not None:
            gW.mul_(blocks.masks[l])
        updates.append((blocks.weights[l], gW))
        if blocks.biases[l] is not None:
            updates.append((blocks.biases[l], delta.sum(0)))
        if l:
            delta = (delta @ blocks.weights[l]).mul_(blocks.unit_gates[l - 1])
    for param, grad in updates:
        param.sub_(grad, alpha=lr)
