"""The paper's datasets reproduce the published statistics exactly (Jarvis et al., arXiv 2503.06181)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import relu_probe as rp
from relu_probe import errors
from relu_probe.tasks import contextual_task, hierarchy


def stats(task):
    X, Y = task.X.numpy().T, task.Y.numpy().T  # features × samples, as in the paper
    P = X.shape[1]
    L0 = 0.5 * (Y**2).sum()
    W = Y @ np.linalg.pinv(X)
    L_lin = 0.5 * ((Y - W @ X) ** 2).sum()
    s = np.linalg.svd(Y @ X.T / P, compute_uv=False)
    return L0, L_lin, s


@pytest.mark.parametrize("k,variant,shape_x,shape_y,L0,L_lin", [
    (3, "hierarchy", (24, 11), (24, 60), 96.0, 17.0),
    (3, "diff", (24, 11), (24, 60), 105.62, 16.51),
    (4, "hierarchy", (32, 12), (32, 75), 128.0, 25.5),
    (5, "hierarchy", (40, 13), (40, 90), 160.0, 34.0),
])
def test_shapes_and_losses(k, variant, shape_x, shape_y, L0, L_lin):
    task = contextual_task(k, variant=variant)
    assert tuple(task.X.shape) == shape_x and tuple(task.Y.shape) == shape_y
    l0, llin, _ = stats(task)
    assert l0 == pytest.approx(L0, abs=5e-3)
    assert llin == pytest.approx(L_lin, abs=5e-3)


def test_singular_values_and_alignment_of_the_three_context_task():
    task = contextual_task(3)
    _, _, s = stats(task)
    expected = [1.0704, 0.4564, 0.4564, 0.3819, 0.25, 0.25, 0.1443, 0.1443, 0.1443, 0.1443, 0.0]
    np.testing.assert_allclose(s, expected, atol=1e-4)
    X, Y = task.X.numpy().T, task.Y.numpy().T
    _, _, Vt = np.linalg.svd(Y @ X.T / 24)
    D = Vt @ (X @ X.T / 24) @ Vt.T
    assert np.abs(D - np.diag(np.diag(D))).max() < 1e-12  # Assumption 2.1 holds exactly


def test_diff_variant_singular_values():
    _, _, s = stats(contextual_task(3, variant="diff"))
    np.testing.assert_allclose(
        s[:10], [1.1427, 0.6104, 0.4564, 0.3797, 0.2581, 0.2320, 0.1555, 0.1502, 0.1440, 0.1382], atol=1e-4
    )


def test_layout_and_coords():
    X, Y, coords = contextual_task(4)
    np.testing.assert_array_equal(coords["context"], np.repeat(np.arange(4), 8))
    np.testing.assert_array_equal(coords["object"], np.tile(np.arange(8), 4))
    np.testing.assert_array_equal(X[:, :8].numpy(), np.tile(np.eye(8), (4, 1)))
    assert set(np.unique(X[:, 8:].numpy())) == {0.0, 1.1}  # the paper's context scale for k = 4
    # block c is zero outside context c
    for c in range(4):
        block = Y[:, 15 * (c + 1) : 15 * (c + 2)].numpy()
        assert not block[coords["context"] != c].any()
        np.testing.assert_array_equal(block[coords["context"] == c], hierarchy(8).T)


def test_hierarchy_singular_values():
    np.testing.assert_allclose(np.linalg.svd(hierarchy(8), compute_uv=False) ** 2, [15, 7, 3, 3, 1, 1, 1, 1])


def test_bad_arguments():
    with pytest.raises(errors.ValueInputError, match="`variant='diff'` is defined for n_contexts=3"):
        contextual_task(4, variant="diff")
    with pytest.raises(errors.ValueInputError, match="`variant` must be one of"):
        contextual_task(3, variant="ring")
    with pytest.raises(errors.ValueInputError, match="power of two"):
        contextual_task(3, n_objects=6)
    with pytest.raises(errors.InputError, match="`n_contexts` must be an integer"):
        contextual_task("3")


def test_paper_network_and_training_reach_the_first_plateau():
    task = contextual_task(3)
    model = rp.tasks.paper_network(3, seed=1)
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear"]
    assert model[0].weight.shape == (700, 11) and model[0].bias is None
    assert model[0].weight.std().item() == pytest.approx(0.005 / 700, rel=0.05)
    losses = rp.tasks.train_full_batch(model, task.X, task.Y, epochs=501)
    assert losses[0] == pytest.approx(96.0, abs=1e-6)
    assert losses[500] == pytest.approx(65.98, abs=0.1)  # Jarvis et al., arXiv 2503.06181


def test_training_divergence_names_lr():
    task = contextual_task(3)
    model = torch.nn.Linear(11, 60, bias=False).double()  # Hessian top eigenvalue 11: lr > 0.18 diverges
    with pytest.raises(errors.ValueInputError, match=r"training diverged.*lower `lr` \(got 1.0\)"):
        rp.tasks.train_full_batch(model, task.X, task.Y, lr=1.0, epochs=2000)
