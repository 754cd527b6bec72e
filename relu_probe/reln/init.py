r"""The mean initial state of a ReLN's pathways, from the ReLU network it imitates.

A one-hidden-layer ReLU network ``f(x) = W2 relu(W1 x)`` is a GDLN whose pathways are its
units (Jarvis et al. 2025, arXiv 2503.06181, §3): unit ``u`` is open on the samples where
``w1_u·x > 0``. A ReLN pathway keyed by a context set ``S`` gathers, for every item ``o``
(samples of one object under several contexts), the units ``U(S, o)`` whose active-context
set on that item is ``S``. On item ``o`` the pathway's map grows at first as
``dM/dt ∝ A E + E B`` with ``A = Σ_{u∈U(S,o)} w2_u w2_uᵀ`` and ``B = Σ_{u∈U(S,o)} w1_u w1_uᵀ``;
in the isotropic mean state ``A0 = a0 I``, ``B0 = b0 I`` that drive is matched by

.. math::

    a_0(S) &= \frac{1}{|O|} \sum_{o} \sum_{u \in U(S,o)} \frac{\lVert w_{2,u} \rVert^2}{m},
    \qquad
    b_0(S) = \frac{1}{|O|} \sum_{o} \sum_{u \in U(S,o)}
             \Big\langle \frac{(w_{1,u} \cdot \tilde x_{\mu})^2}{\lVert \tilde x_{\mu} \rVert^2}
             \Big\rangle_{\mu \in (o, S)}

(``m`` outputs, ``x̃_μ`` the inputs pathway ``S`` reads). For i.i.d. Gaussian weights
``N(0, σ_in²)``, ``N(0, σ_out²)`` on ``h`` units this is

.. math::

    a_0(S) = σ_{out}^2\, h\, f_S, \qquad
    b_0(S) = σ_{in}^2\, h\, \mathbb E_{w \sim N(0, I)}\big[\mathbb 1[S(w,o) = S]\,
             (w \cdot \hat x_\mu)^2\big]_{o,\mu}

with ``f_S`` the probability that a random unit's active set on an item is ``S`` (an orthant
probability of the Gaussian pre-activations, which depends only on the data) and ``x̂`` the
unit-normalised inputs. For the paper's one-hot tasks with ``k`` contexts, ``f_S`` is
``1/(k+1)`` for the full set and ``1/((k+1) C(k, |S|))`` for each other set. The expectation
is estimated with ``n_units`` Gaussian draws from a fixed seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from .._util.checks import check_int, check_real
from ..errors import InputError, ValueInputError, describe
from .exact import MeanState
from .small_init import DEFAULT_RELATIVE_INIT, default_pi0

__all__ = [
    "mean_state_from_units",
    "mean_state_from_init",
    "mean_state_from_network",
    "items_of",
    "InitRule",
    "network_state",
    "init_std_from_trained",
    "layer_weight_stds",
    "context_set_state",
    "default_pi0",
    "init_scales_of",
    "DEFAULT_N_UNITS",
    "recruitable",
    "DEFAULT_RELATIVE_INIT",
]

#: Gaussian units drawn to estimate the init statistics of ``mean_state_from_init``.
DEFAULT_N_UNITS = 20000



def items_of(X: np.ndarray, context: np.ndarray, cue: np.ndarray, within: Any = None) -> np.ndarray:
    """Item id per sample: the ``within`` labels, else samples with equal non-cue inputs."""
    if within is not None:
        _, inv = np.unique(np.asarray(within), return_inverse=True)
        return inv.reshape(-1)
    _, inv = np.unique(np.round(X[:, ~cue], 12), axis=0, return_inverse=True)
    return inv.reshape(-1)


def mean_state_from_units(
    W1: np.ndarray,
    w2_sq: np.ndarray,
    X: np.ndarray,
    sets: list[tuple],
    context: np.ndarray,
    masks: np.ndarray,
    items: np.ndarray,
    *,
    scale: float = 1.0,
    source: str = "units",
) -> MeanState:
    """``a0(S), b0(S)`` (module docstring) from a population of units.

    ``W1`` (units × features) input weights, ``w2_sq`` (units,) ``‖w2_u‖²/m``; every sum is
    multiplied by ``scale`` (``h / n_units`` for a sample of Gaussian units).
    """
    Z = X @ W1.T  # (P, U)
    ctx_vals = np.unique(context)
    item_vals = np.unique(items)
    n_items = len(item_vals)
    set_index = {tuple(s): i for i, s in enumerate(sets)}
    a0 = np.zeros(len(sets))
    b0 = np.zeros(len(sets))
    for o in item_vals:
        in_o = items == o
        present = [c for c in ctx_vals if np.any(in_o & (context == c))]
        on = np.stack([(Z[in_o & (context == c)] > 0).mean(0) > 0.5 for c in present])  # (C_o, U)
        keys = [tuple(c for c, flag in zip(present, col) if flag) for col in on.T]
        for j, S in enumerate(sets):
            members = np.array([k == tuple(S) for k in keys])
            if not members.any():
                continue
            rows = in_o & np.isin(context, np.asarray(S, dtype=context.dtype))
            Xp = X[rows] * masks[j][None, :]
            norm = np.sum(Xp**2, axis=1, keepdims=True)
            norm = np.where(norm > 0, norm, 1.0)
            drive = ((Xp @ W1[members].T) ** 2 / norm).mean(0)  # (members,)
            a0[j] += scale * w2_sq[members].sum()
            b0[j] += scale * drive.sum()
    unknown = [s for s in sets if tuple(s) not in set_index]
    if unknown:  # pragma: no cover - sets come from the caller's gating
        raise ValueInputError(f"unknown context sets {unknown}")
    return MeanState(a0 / n_items, b0 / n_items, source)


def mean_state_from_init(
    X: np.ndarray,
    sets: list[tuple],
    context: np.ndarray,
    masks: np.ndarray,
    items: np.ndarray,
    *,
    std_in: float,
    std_out: float,
    width: int,
    n_units: int = DEFAULT_N_UNITS,
    seed: int = 0,
) -> MeanState:
    """Mean state of a width-``h`` ReLU network with i.i.d. ``N(0, σ_in²)`` / ``N(0, σ_out²)``
    weights (module docstring), estimated from ``n_units`` Gaussian units."""
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((n_units, X.shape[1]))
    return mean_state_from_units(
        std_in * W1,
        np.full(n_units, std_out**2),
        X,
        sets,
        context,
        masks,
        items,
        scale=width / n_units,
        source=f"init std_in={std_in:g}, std_out={std_out:g}, width={width}",
    )


def one_hidden_layer(model: Any, *, allow_biases: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(W1, W2)`` of a one-hidden-layer ReLU MLP (first and last ``nn.Linear``); nonzero
    biases are refused unless *allow_biases* (then :func:`hidden_biases` reads the hidden ones)."""
    if not isinstance(model, nn.Module):
        raise InputError(f"`network` must be a torch.nn.Module, got {describe(model)}.")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if len(linears) != 2 or len(relus) != 1:
        raise ValueInputError(
            "`network` must be a one-hidden-layer ReLU MLP (Linear → ReLU → Linear); got "
            f"{len(linears)} Linear and {len(relus)} ReLU modules."
        )
    for layer in linears:
        if not allow_biases and layer.bias is not None and bool(layer.bias.detach().abs().max() > 0):
            raise ValueInputError(
                "`network` has nonzero biases; the pathways' initial state is computed for bias-free "
                "networks (Linear(bias=False) or zero biases)."
            )
    W1 = linears[0].weight.detach().cpu().double().numpy()
    W2 = linears[1].weight.detach().cpu().double().numpy()
    if W2.shape[1] != W1.shape[0]:
        raise ValueInputError(
            f"`network`: the readout takes {W2.shape[1]} inputs but the hidden layer has "
            f"{W1.shape[0]} units."
        )
    return W1, W2


def hidden_biases(model: Any) -> np.ndarray:
    """The hidden layer's biases of a one-hidden-layer ReLU MLP (zeros without a bias)."""
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    if first.bias is None:
        return np.zeros(first.out_features)
    return first.bias.detach().cpu().double().numpy()


def layer_weight_stds(network: Any, n_weights: int) -> list[float]:
    r"""The initial weight std of each weight layer of an *untrained* MLP, input side first:
    ``σ_l = \sqrt{\overline{W_l^2}}`` over the entries of its ``l``-th ``nn.Linear`` (the std
    of a zero-mean Gaussian draw), the init of a layered ReLN whose blocks share each layer's
    units (:mod:`relu_probe.reln.layered`). Refuses a network whose number of ``nn.Linear``
    layers is not *n_weights* (one per recorded ReLU layer, plus the readout)."""
    if not isinstance(network, nn.Module):
        raise InputError(f"`network` must be a torch.nn.Module, got {describe(network)}.")
    linears = [m for m in network.modules() if isinstance(m, nn.Linear)]
    if len(linears) != n_weights:
        raise ValueInputError(
            f"`network`: the layered ReLN has {n_weights} weight layers ({n_weights - 1} recorded ReLU layers and "
            f"the readout) but the network has {len(linears)} nn.Linear layers; give the init stds as "
            "`init_scale` (one per weight layer) instead."
        )
    return [float(np.sqrt(np.mean(m.weight.detach().cpu().double().numpy() ** 2))) for m in linears]


def mean_state_from_network(
    network: Any,
    X: np.ndarray,
    sets: list[tuple],
    context: np.ndarray,
    masks: np.ndarray,
    items: np.ndarray,
) -> MeanState:
    """Mean state of the given (untrained) network's own units (module docstring).

    A hidden bias ``b_u`` is the weight of a constant input that every pathway reads (as the
    ReLN models it): ``x → [x, 1]``, ``w1_u → [w1_u, b_u]`` in the gating and the drive ``b0``.
    """
    W1, W2 = one_hidden_layer(network, allow_biases=True)
    if W1.shape[1] != X.shape[1]:
        raise ValueInputError(
            f"`network` reads {W1.shape[1]} inputs but `X` has {X.shape[1]} features."
        )
    w2_sq = (W2**2).sum(0) / W2.shape[0]
    b1 = hidden_biases(network)
    if np.any(b1 != 0):
        ones = np.ones((X.shape[0], 1))
        return mean_state_from_units(np.hstack([W1, b1[:, None]]), w2_sq, np.hstack([X, ones]), sets, context,
                                     np.hstack([masks, np.ones((masks.shape[0], 1))]), items,
                                     source="network weights and hidden biases")
    return mean_state_from_units(W1, w2_sq, X, sets, context, masks, items, source="network weights")


#: Fewest weights an initial std is estimated from by :func:`init_std_from_trained` (a
#: relative standard error of at most ``1/√(2·50) = 10 %``).
MIN_UNTOUCHED = 50


def init_std_from_trained(network: Any, X: np.ndarray) -> tuple[tuple[float, float], int, str] | None:
    r"""The initial weight stds of a one-hidden-layer ReLU network, read off the *trained*
    network from the weights gradient descent never touched.

    Under gradient descent (plain, with momentum or Adam; no weight decay) on inputs ``X``:

    - the input weights ``W1`` change by ``(W2ᵀ R ⊙ gates) X``, inside the row space of ``X``:
      their projection on the directions ``X`` does not span (``V_⊥``) is still the initial
      draw, so ``σ_in² = ‖W1 V_⊥‖² / (h · dim V_⊥)``;
    - a unit off on every sample gets no gradient: its readout column of ``W2`` (independent
      of which units are off) is still the initial draw, ``σ_out² = mean(W2[:, dead]²)``.

    When ``X`` spans every input direction, the input weights of the off units are used
    instead (a draw conditioned on being off everywhere, so biased); when only one of the two
    is available it stands for both. Each estimate needs :data:`MIN_UNTOUCHED` weights.
    Returns ``((σ_in, σ_out), h, description)`` or None when neither can be read.
    """
    W1, W2 = one_hidden_layer(network, allow_biases=True)  # biases leave the same weights untouched
    X = np.asarray(X, dtype=np.float64)
    b1 = hidden_biases(network)
    if W1.shape[1] != X.shape[1]:
        raise ValueInputError(f"`network` reads {W1.shape[1]} inputs but `X` has {X.shape[1]} features.")
    h = W1.shape[0]
    _, sv, Vt = np.linalg.svd(X, full_matrices=True)
    rank = int(np.sum(sv > 1e-10 * max(float(sv.max()), 1e-300))) if sv.size else 0
    null = Vt[rank:]
    dead = np.all(X @ W1.T + b1 <= 0, axis=0)
    s_in = s_out = None
    how: list[str] = []
    if null.shape[0] and h * null.shape[0] >= MIN_UNTOUCHED:
        s_in = float(np.sqrt(np.mean((W1 @ null.T) ** 2)))
        how.append(f"σ_in from the input weights along the {null.shape[0]} input direction(s) the data do not span")
    if dead.sum() * W2.shape[0] >= MIN_UNTOUCHED:
        s_out = float(np.sqrt(np.mean(W2[:, dead] ** 2)))
        how.append(f"σ_out from the readout weights of the {int(dead.sum())} units off on every sample")
        if s_in is None and dead.sum() * W1.shape[1] >= MIN_UNTOUCHED:
            s_in = float(np.sqrt(np.mean(W1[dead] ** 2)))
            how.append("σ_in from those units' input weights (biased: they are conditioned on being off)")
    if s_in is None and s_out is None:
        return None
    if s_in is None or s_out is None:
        s_in = s_out = s_in if s_in is not None else s_out
        how.append("the same std assumed for both layers")
    text = (f"initial weight stds ({s_in:.3g}, {s_out:.3g}) read off the trained network ({'; '.join(how)}: "
            "weights gradient descent never changes, no weight decay assumed)")
    return (s_in, s_out), h, text


class InitRule:
    """How the pathways' mean initial state is obtained, resolved once per analysis.

    Exactly one source, in this order of preference:

    - ``network``: the untrained one-hidden-layer ReLU network (its own units,
      :func:`mean_state_from_network`) — e.g. a copy taken at step 0, as a training monitor
      sees it;
    - ``init_std`` and ``width``: i.i.d. Gaussian weights of that std (one value or
      ``(input layer, output layer)``) on ``width`` hidden units (:func:`mean_state_from_init`);
      ``init_std="pytorch"`` means PyTorch's default ``nn.Linear`` initialisation
      (``U(±1/√fan_in)``, std ``1/√(3 fan_in)`` per layer);
    - neither: :data:`DEFAULT_RELATIVE_INIT`: Gaussian units scaled so that the pathway open
      in every context starts at ``π0 = DEFAULT_RELATIVE_INIT × σ_1(M_lin)``; when no unit
      can be on in every context of an item (items nested in contexts, e.g. one class per
      context, so that set's orthant probability is 0), the whole hidden layer starts at that
      ``π0`` instead (at unit std and width its mean state is ``a0 = b0 = 1``).

    Call :meth:`state` with the context sets; values are cached per set (a set's state does
    not depend on the other sets raced with it).
    """

    def __init__(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        context: np.ndarray,
        items: np.ndarray,
        masks_of: Any,
        *,
        network: Any = None,
        init_std: Any = None,
        width: Any = None,
        n_units: int = DEFAULT_N_UNITS,
    ) -> None:
        self.X, self.Y, self.context, self.items = X, Y, context, items
        self.masks_of = masks_of
        self.network = network
        self.n_units = check_int("n_units", n_units, minimum=100)
        self._cache: dict[tuple, tuple[float, float]] = {}
        if network is not None and (init_std is not None or width is not None):
            raise ValueInputError("pass either `network` or `init_std`/`width`, not both.")
        if network is not None:
            one_hidden_layer(network, allow_biases=True)  # validate now
            self.source = ("network weights and hidden biases" if np.any(hidden_biases(network) != 0)
                           else "network weights")
            return
        if (init_std is None) != (width is None):
            raise ValueInputError(
                "`init_std` and `width` go together (the network's initial weight std and its "
                f"hidden width); got init_std={init_std!r}, width={width!r}."
            )
        if init_std is not None:
            self.width = check_int("width", width, minimum=1)
            if isinstance(init_std, str):
                if init_std != "pytorch":
                    raise ValueInputError(
                        f"`init_std` must be a number, a pair, or 'pytorch'; got {init_std!r}."
                    )
                s_in, s_out = 1.0 / np.sqrt(3.0 * X.shape[1]), 1.0 / np.sqrt(3.0 * self.width)
            elif np.isscalar(init_std):
                s_in = s_out = check_real("init_std", init_std, minimum=0.0, strict=True)
            else:
                vals = list(init_std)
                if len(vals) != 2:
                    raise ValueInputError(
                        "`init_std` must be one std or (input-layer, output-layer) stds, got "
                        f"{describe(init_std)}."
                    )
                s_in, s_out = (check_real("init_std", v, minimum=0.0, strict=True) for v in vals)
            self.std_in, self.std_out = float(s_in), float(s_out)
            self.source = f"init std ({self.std_in:g}, {self.std_out:g}), width {self.width}"
            return
        self.std_in = self.std_out = 1.0
        self.width = 1
        full = tuple(sorted(np.unique(context).tolist()))
        a0, b0 = self._gaussian([full])[0]
        reference, whom = (a0 + b0) / 4.0, "the pathway open in every context"
        if not reference > 0.0:  # no unit can be on in every context of an item: the whole layer
            reference, whom = 0.5, "the whole hidden layer (no unit can be on in every context of an item)"
        scale = default_pi0(X, Y) / reference
        self.std_in = self.std_out = float(np.sqrt(scale))
        self.source = f"default small init (π0 = {DEFAULT_RELATIVE_INIT:g} × σ1 of the best linear map, for {whom})"

    def _gaussian(self, sets: list[tuple]) -> list[tuple[float, float]]:
        st = mean_state_from_init(
            self.X, sets, self.context, self.masks_of(sets), self.items,
            std_in=self.std_in, std_out=self.std_out, width=self.width, n_units=self.n_units,
        )
        return list(zip(st.a0, st.b0))

    def state(self, sets: list[tuple]) -> MeanState:
        """The mean state of these context-set pathways.

        A set no initial unit serves (possible for large ``K`` or sparse data) starts at the
        smallest nonzero scale of the others: it can still be recruited later.
        """
        todo = [S for S in sets if S not in self._cache]
        if todo:
            if self.network is not None:
                st = mean_state_from_network(
                    self.network, self.X, todo, self.context, self.masks_of(todo), self.items
                )
                vals = list(zip(st.a0, st.b0))
            else:
                vals = self._gaussian(todo)
            self._cache.update(zip(todo, vals))
        a0 = np.array([self._cache[S][0] for S in sets])
        b0 = np.array([self._cache[S][1] for S in sets])
        return recruitable(MeanState(a0, b0, self.source))


def recruitable(state: MeanState) -> MeanState:
    """*state* with every pathway no initial unit serves (``a0 = 0`` or ``b0 = 0``, possible
    for large ``K`` or sparse data) started at the smallest nonzero scale of the others: it can
    still be recruited later. Refuses a state where no pathway has a unit."""
    a0, b0 = state.a0, state.b0
    if not np.any(a0 + b0 > 0):
        raise ValueInputError(
            "no candidate pathway has a unit at initialisation (every unit is off on every "
            "item); the race cannot start."
        )
    fa = np.min(a0[a0 > 0]) if np.any(a0 > 0) else 0.0
    fb = np.min(b0[b0 > 0]) if np.any(b0 > 0) else 0.0
    return MeanState(np.where(a0 > 0, a0, fa), np.where(b0 > 0, b0, fb), state.source)


def init_scales_of(state: MeanState, widths: Any) -> list[tuple[float, float]]:
    r"""The initial weight stds of a one-hidden-layer GDLN whose pathways, with ``h_p`` hidden
    units each, start on average in *state*: ``σ_in = √(b0/h)``, ``σ_out = √(a0/h)`` per
    pathway (the inverse of :meth:`MeanState.from_weights`), as ``init_scale`` pairs
    (input layer, output layer)."""
    h = np.broadcast_to(np.asarray(widths, dtype=np.float64), state.a0.shape)
    return [(float(np.sqrt(b / w)), float(np.sqrt(a / w))) for a, b, w in zip(state.a0, state.b0, h)]


def context_set_state(
    X: np.ndarray,
    Y: np.ndarray,
    sets: list[tuple],
    context: np.ndarray,
    masks: np.ndarray,
    cue: np.ndarray,
    *,
    within: Any = None,
    network: Any = None,
    init_std: Any = None,
    width: Any = None,
) -> MeanState:
    """The mean state of context-set pathways *sets* (input *masks*, one row per set) by the
    :class:`InitRule` of ``network`` / ``init_std`` and ``width`` / the default."""
    index = {tuple(S): i for i, S in enumerate(sets)}
    items = items_of(X, context, cue, within)
    rule = InitRule(X, Y, context, items, lambda todo: masks[[index[tuple(S)] for S in todo]],
                    network=network, init_std=init_std, width=width)
    return rule.state([tuple(S) for S in sets])


def network_state(
    network: Any,
    X: np.ndarray,
    sets: list[tuple],
    context: np.ndarray,
    masks: np.ndarray,
    cue: np.ndarray,
    within: Any = None,
) -> MeanState:
    """The mean state of context-set pathways *sets* (with input *masks*) from the untrained
    *network*'s own units (:func:`mean_state_from_network`, items from *within* or the
    non-cue inputs, :func:`recruitable`)."""
    items = items_of(X, context, cue, within)
    return recruitable(mean_state_from_network(network, X, sets, context, masks, items))
