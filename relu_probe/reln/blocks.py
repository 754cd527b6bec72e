r"""The weights of a GDLN as block-masked matrices, and the gradient step that trains them.

All pathways of the same depth form one *group*: their hidden units are concatenated, so
layer :math:`l` of the group is one matrix :math:`W_l` whose pathway blocks sit on the
diagonal (masks keep the off-diagonal blocks at zero). Gating a pathway's first-layer units
gates the whole pathway, since its later layers are linear and block-diagonal:

.. math:: g_{p\mu}\, W_{p,L} \cdots W_{p,2} W_{p,1} \tilde x_{p\mu}
          = W_{p,L} \cdots W_{p,2} \big(g_{p\mu} W_{p,1} \tilde x_{p\mu}\big)

so one epoch costs a handful of matrix products whatever the number of pathways.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ValueInputError
from .spec import PathwaySpec

__all__ = ["PathwayBlocks", "gradient_step"]


class PathwayBlocks:
    r"""Concatenated, block-masked weights of all pathways of a :class:`PathwaySpec` (one group
    per depth), drawn from :math:`\mathcal N(0, \sigma^2)` with each weight matrix's
    ``init_scales`` std.

    The trunk (ungated layers shared by all pathways) is drawn first, then every pathway's
    weights in pathway order, input side first, so that a pathway's initial weights do not
    depend on the pathways listed after it. Within a group the shared pathways come first, so
    that the residual rule can split the output layer's columns.
    """

    def __init__(
        self,
        spec: PathwaySpec,
        n_out: int,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.n_paths = spec.n_pathways
        self.n_out = n_out
        self.dtype, self.device = dtype, device
        in_mask = spec.design_inputs  # with hidden biases: a last, constant input every pathway reads
        self.trunk: list[torch.Tensor] = []
        prev = in_mask.shape[1]
        for width, scale in zip(spec.trunk, spec.trunk_scales):
            self.trunk.append((torch.randn(width, prev, generator=generator, dtype=dtype) * scale).to(device))
            prev = width
        if self.trunk:
            in_mask = np.ones((self.n_paths, prev), dtype=bool)
        self.n_base = prev  # what the pathways read: the inputs, or the trunk's last layer
        n_data = spec.inputs.shape[1] if not self.trunk else prev
        draws = [self._draw(spec, p, int(in_mask[p, :n_data].sum()), n_out, generator) for p in range(self.n_paths)]
        if spec.hidden_bias:  # the bias column of every pathway's first layer, drawn after all weights
            for p in range(self.n_paths):
                draws[p][0] = torch.cat([draws[p][0], self._bias(spec, (spec.widths[p][0], 1), generator)], dim=1)
        self.output_bias = (self._bias(spec, (n_out,), generator).to(device) if spec.output_bias else None)
        self.groups: list[dict[str, Any]] = []
        for depth in sorted(set(spec.depths)):
            members = [p for p in range(self.n_paths) if spec.depths[p] == depth]
            members.sort(key=lambda p: (not spec.shared[p], p))
            self.groups.append(self._group(spec, members, draws, in_mask))

    def _bias(self, spec: PathwaySpec, shape: tuple[int, ...], generator: Any) -> torch.Tensor:
        """Initial biases: ``N(0, bias_init_scale²)``, zeros (no draw) at scale 0."""
        if spec.bias_init_scale == 0.0:
            return torch.zeros(shape, dtype=self.dtype)
        return torch.randn(shape, generator=generator, dtype=self.dtype) * spec.bias_init_scale

    def _draw(self, spec: PathwaySpec, p: int, n_in: int, n_out: int, generator: Any) -> list[torch.Tensor]:
        sizes = [n_in, *spec.widths[p], n_out]
        return [
            torch.randn(b, a, generator=generator, dtype=self.dtype) * spec.init_scales[p][layer]
            for layer, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
        ]

    def _group(self, spec: PathwaySpec, members: list[int], draws: list[list[torch.Tensor]],
               in_mask: np.ndarray) -> dict[str, Any]:
        """One depth group: its weights, masks and the offsets of each member's block."""
        dtype, n_in = self.dtype, in_mask.shape[1]
        depth = spec.depths[members[0]]
        sizes = [[spec.widths[p][layer] for p in members] for layer in range(depth)]
        tot = [sum(s) for s in sizes]
        offs = [np.concatenate([[0], np.cumsum(s)]) for s in sizes]
        weights, masks = [], []
        # layer 0: (H_0, n_in), each member's rows reading its own inputs
        W = torch.zeros(tot[0], n_in, dtype=dtype)
        M = torch.zeros(tot[0], n_in, dtype=dtype)
        for j, p in enumerate(members):
            rows = slice(int(offs[0][j]), int(offs[0][j + 1]))
            block = torch.zeros(sizes[0][j], n_in, dtype=dtype)
            block[:, torch.from_numpy(np.flatnonzero(in_mask[p]))] = draws[p][0]
            W[rows] = block
            M[rows] = torch.as_tensor(in_mask[p], dtype=dtype).expand(sizes[0][j], n_in)
        weights.append(W)
        masks.append(None if bool(M.all()) else M)
        # hidden-to-hidden layers: block diagonal (H_l, H_{l-1})
        for layer in range(1, depth):
            W = torch.zeros(tot[layer], tot[layer - 1], dtype=dtype)
            M = torch.zeros(tot[layer], tot[layer - 1], dtype=dtype)
            for j, p in enumerate(members):
                rows = slice(int(offs[layer][j]), int(offs[layer][j + 1]))
                cols = slice(int(offs[layer - 1][j]), int(offs[layer - 1][j + 1]))
                W[rows, cols] = draws[p][layer]
                M[rows, cols] = 1.0
            weights.append(W)
            masks.append(M)
        # output layer: (n_out, H_{L-1})
        W = torch.zeros(self.n_out, tot[-1], dtype=dtype)
        for j, p in enumerate(members):
            W[:, slice(int(offs[-1][j]), int(offs[-1][j + 1]))] = draws[p][depth]
        weights.append(W)
        masks.append(None)
        return {
            "members": members,
            "sizes": sizes,
            "offs": offs,
            "weights": [w.to(self.device) for w in weights],
            "masks": [None if m is None else m.to(self.device) for m in masks],
            "unit_path0": np.repeat(members, sizes[0]),
            "n_shared": int(sum(spec.widths[p][-1] for p in members if spec.shared[p])),
            "equal": all(len(set(s)) == 1 for s in sizes),
        }

    def unit_gates(self, G: torch.Tensor) -> list[torch.Tensor]:
        """Per group: (sample, H_0) gate of every first-layer unit."""
        return [G[torch.from_numpy(g["unit_path0"]).to(G.device)].T.contiguous() for g in self.groups]

    def maps(self) -> torch.Tensor:
        """(pathway, output, input) maps ``M_p = W_{p,L} ··· W_{p,1}`` of every pathway (times the
        trunk's map ``T_K ··· T_1`` when there is a trunk)."""
        n_out, n_in = self.n_out, self.n_base
        out = torch.zeros(self.n_paths, n_out, n_in, dtype=self.dtype, device=self.device)
        for g in self.groups:
            Ws = g["weights"]
            members, sizes, offs = g["members"], g["sizes"], g["offs"]
            depth = len(sizes)
            if g["equal"]:
                k = len(members)
                h = [s[0] for s in sizes]
                prod = Ws[0].reshape(k, h[0], n_in)
                for l in range(1, depth):
                    blocks = torch.stack(
                        [
                            Ws[l][offs[l][j] : offs[l][j + 1], offs[l - 1][j] : offs[l - 1][j + 1]]
                            for j in range(k)
                        ]
                    )
                    prod = blocks @ prod
                last = Ws[-1].reshape(n_out, k, h[-1]).permute(1, 0, 2)
                out[torch.as_tensor(members)] = last @ prod
            else:
                for j, p in enumerate(members):
                    prod = Ws[0][offs[0][j] : offs[0][j + 1]]
                    for l in range(1, depth):
                        prod = Ws[l][offs[l][j] : offs[l][j + 1], offs[l - 1][j] : offs[l - 1][j + 1]] @ prod
                    out[p] = Ws[-1][:, offs[-1][j] : offs[-1][j + 1]] @ prod
        if self.trunk:
            T = self.trunk[0]
            for W in self.trunk[1:]:
                T = W @ T
            out = out @ T
        return out

    def load(self, weights: list[list[np.ndarray]], output_bias: np.ndarray | None) -> None:
        """Set every pathway's weights (as :meth:`per_pathway_weights` returns them) and the
        output bias: the inverse of reading them."""
        if self.trunk:
            raise ValueInputError("a warm start of a GDLN with a trunk is not supported.")
        if len(weights) != self.n_paths:
            raise ValueInputError(f"`weights_` must hold {self.n_paths} pathways, got {len(weights)}.")
        for g in self.groups:
            Ws, offs, masks = g["weights"], g["offs"], g["masks"]
            depth = len(g["sizes"])
            for j, p in enumerate(g["members"]):
                mats = [torch.as_tensor(np.asarray(m), dtype=self.dtype, device=self.device) for m in weights[p]]
                if len(mats) != depth + 1:
                    raise ValueInputError(f"`weights_[{p}]` must hold {depth + 1} matrices, got {len(mats)}.")
                rows = slice(int(offs[0][j]), int(offs[0][j + 1]))
                first = mats[0] if masks[0] is None else mats[0] * masks[0][rows]
                Ws[0][rows] = first  # full design rows, as read; entries outside the input mask stay 0
                for l in range(1, depth):
                    Ws[l][offs[l][j]:offs[l][j + 1], offs[l - 1][j]:offs[l - 1][j + 1]] = mats[l]
                Ws[-1][:, offs[-1][j]:offs[-1][j + 1]] = mats[depth]
        if self.output_bias is not None and output_bias is not None:
            self.output_bias.copy_(torch.as_tensor(np.asarray(output_bias), dtype=self.dtype))

    def per_pathway_weights(self) -> list[list[np.ndarray]]:
        """Each pathway's own weight matrices, input side first, as numpy copies."""
        res: list[list[np.ndarray]] = [[] for _ in range(self.n_paths)]
        for g in self.groups:
            Ws, offs = g["weights"], g["offs"]
            depth = len(g["sizes"])
            for j, p in enumerate(g["members"]):
                mats = [Ws[0][offs[0][j] : offs[0][j + 1]]]
                for l in range(1, depth):
                    mats.append(Ws[l][offs[l][j] : offs[l][j + 1], offs[l - 1][j] : offs[l - 1][j + 1]])
                mats.append(Ws[-1][:, offs[-1][j] : offs[-1][j + 1]])
                res[p] = [m.detach().cpu().numpy().copy() for m in mats]
        return res


def gradient_step(
    blocks: PathwayBlocks,
    gates_u: list[torch.Tensor],
    X: torch.Tensor,
    Y: torch.Tensor,
    lr: float,
    residual: bool,
    losses: torch.Tensor,
    epoch: int,
) -> None:
    r"""One full-batch gradient-descent step of every weight, by hand-written backpropagation.

    Forward pass of a group with weights :math:`W_0` (first layer), :math:`W_1 … W_{L-1}`
    (hidden to hidden) and :math:`W_L` (output), after the trunk
    :math:`B = X T_1^\top \cdots T_K^\top` (:math:`B = X` without one), with :math:`G_u`
    the (sample, unit) gate of every first-layer unit (its pathway's gate):

    .. math:: H_0 = (B W_0^\top) \odot G_u,\qquad H_l = H_{l-1} W_l^\top,\qquad
              \hat Y = \sum_{\text{groups}} H_{L-1} W_L^\top

    Loss and error: :math:`L = \tfrac12 \lVert \hat Y - Y \rVert_F^2` (stored in
    ``losses[epoch]``, before the update), :math:`E = \hat Y - Y`. Backward pass, with
    :math:`M_l` the block masks (and the input masks at :math:`l = 0`):

    .. math::
        \nabla_{W_L} L = E^\top H_{L-1},\qquad \Delta_{L-1} = E W_L,\\
        \nabla_{W_l} L = (\Delta_l^\top H_{l-1}) \odot M_l,\quad \Delta_{l-1} = \Delta_l W_l
        \quad (l = L-1, …, 1),\\
        \Delta_0 \leftarrow \Delta_0 \odot G_u,\qquad \nabla_{W_0} L = (\Delta_0^\top B) \odot M_0.

    The trunk receives :math:`\Delta_B = \sum_{\text{groups}} \Delta_0 W_0` and passes it down
    as :math:`\nabla_{T_k} L = \Delta^\top B_{k-1}`, :math:`\Delta \leftarrow \Delta T_k`.
    With ``residual`` (the paper's rule, :class:`relu_probe.GDLN`), the shared pathways' units
    (the first ``n_shared`` columns of :math:`W_L`) back-propagate their own error
    :math:`E_s = \hat Y_s - Y`, :math:`\hat Y_s` the shared pathways' output alone, in place
    of :math:`E`; the block-diagonal layers keep it within their blocks. Every weight is then
    updated at once: :math:`W \leftarrow W - \eta\, \nabla_W L` with :math:`\eta` = ``lr``.

    Hidden biases are the last column of :math:`B` (a constant input, mask 1 for every
    pathway) and train as weights. An output bias :math:`b` (the ungated direct path) adds
    :math:`\mathbf 1 b^\top` to :math:`\hat Y` and steps by
    :math:`\nabla_b L = E^\top \mathbf 1` (:math:`E_s^\top \mathbf 1` under ``residual``, where it
    counts with the shared pathways, whose output :math:`\hat Y_s` then includes it).
    ``G_u`` holds effective gates (:attr:`relu_probe.reln.spec.PathwaySpec.gates`): a leaky
    pathway's closed units pass :math:`\alpha` of their input, forward and backward.
    """
    acts_all = []
    Yhat = None
    Yhat_s = None
    trunk_acts = [X]
    for W in blocks.trunk:
        trunk_acts.append(trunk_acts[-1] @ W.T)
    base = trunk_acts[-1]
    for g, Gu in zip(blocks.groups, gates_u):
        Ws = g["weights"]
        acts = [torch.mul(base @ Ws[0].T, Gu)]
        for W in Ws[1:-1]:
            acts.append(acts[-1] @ W.T)
        out = acts[-1] @ Ws[-1].T
        Yhat = out if Yhat is None else Yhat + out
        if residual and g["n_shared"]:
            ns = g["n_shared"]
            out_s = acts[-1][:, :ns] @ Ws[-1][:, :ns].T
            Yhat_s = out_s if Yhat_s is None else Yhat_s + out_s
        acts_all.append(acts)
    if blocks.output_bias is not None:
        Yhat = Yhat + blocks.output_bias
        if residual:
            Yhat_s = blocks.output_bias.expand_as(Y) if Yhat_s is None else Yhat_s + blocks.output_bias
    E = Yhat - Y
    flat = E.reshape(-1)
    losses[epoch] = 0.5 * torch.dot(flat, flat)
    Es = (Yhat_s - Y) if residual else None
    if blocks.output_bias is not None:
        updates_bias = (blocks.output_bias, (Es if residual else E).sum(0))
    delta_base = None
    updates: list[tuple[torch.Tensor, torch.Tensor]] = []
    for g, Gu, acts in zip(blocks.groups, gates_u, acts_all):
        Ws, masks = g["weights"], g["masks"]
        ns = g["n_shared"] if residual else 0
        h = acts[-1]
        Wout = Ws[-1]
        dWout = E.T @ h
        delta = E @ Wout
        if ns:  # shared units back-propagate their own error, the others the total error
            dWout[:, :ns] = Es.T @ h[:, :ns]
            delta[:, :ns] = Es @ Wout[:, :ns]
        grads = [dWout]
        for layer in range(len(Ws) - 2, 0, -1):
            gW = delta.T @ acts[layer - 1]
            gW.mul_(masks[layer])
            grads.append(gW)
            delta = delta @ Ws[layer]
        delta.mul_(Gu)
        g0 = delta.T @ base
        if masks[0] is not None:
            g0.mul_(masks[0])
        grads.append(g0)
        if blocks.trunk:
            back = delta @ Ws[0]
            delta_base = back if delta_base is None else delta_base + back
        updates.extend(zip(reversed(Ws), grads))
    if blocks.trunk:
        delta = delta_base
        for layer in range(len(blocks.trunk) - 1, -1, -1):
            gW = delta.T @ trunk_acts[layer]
            if layer:
                delta = delta @ blocks.trunk[layer]
            updates.append((blocks.trunk[layer], gW))
    if blocks.output_bias is not None:
        updates.append(updates_bias)
    for W, gW in updates:
        W.sub_(gW, alpha=lr)
