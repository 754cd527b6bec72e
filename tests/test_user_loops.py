"""analyze on the user's own networks and training loops: the loss convention read off a
TrainingMonitor's losses (or stated as unchecked), the first steps replayed by gradient
descent (Adam, momentum, minibatches told apart), and the notes that say when a number would
otherwise mislead (a ReLN on its plateau or diverging, class indices as targets, the
importance's fallback)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import relu_probe as rp
from relu_probe.reln.dynamics import loss_convention, model_outputs

EPOCHS = 201
EFFECTIVE_LR = 5e-3  # the rate on the summed loss ½Σ‖y − f(x)‖² every loop below trains at


def _train(loss_kind: str, *, every: int = 50, log_loss: bool = True, keep_initial: bool = True,
           steps: int = EPOCHS, tell_epochs: bool = True):
    X, Y, coords = rp.tasks.contextual_task(3)
    P, m = Y.shape
    model = rp.tasks.paper_network(3, width=40, seed=0)
    factor = {"sum": 1.0, "mse": 2.0 / (P * m)}.get(loss_kind, 1.0)
    lr = EFFECTIVE_LR / factor
    mon = rp.TrainingMonitor(model, X, coords=coords, every=every, by="context", within="object", lr=lr,
                             epochs=steps if tell_epochs else None, keep_initial=keep_initial)
    opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if loss_kind == "adam"
           else torch.optim.SGD(model.parameters(), lr=lr))
    for step in range(steps):
        opt.zero_grad()
        out = model(X)
        loss = (torch.nn.functional.mse_loss(out, Y) if loss_kind in ("mse", "adam")
                else 0.5 * ((out - Y) ** 2).sum())
        loss.backward()
        opt.step()  # the monitor sees the model after the update of the loss it is given
        mon.update(step, loss.item() if log_loss else None)
    return model, X, Y, coords, mon, lr, factor


def _analyze(model, X, Y, coords, mon):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rp.analyze(model, X, Y=Y, coords=coords, by="context", within="object", attribution=False,
                          literature=False, monitor=mon, predict=False)


def _notes(res, word="convention"):
    return [n for n in res.notes if word in n]


def test_sparse_values_identify_the_convention():
    """Values at snapshot steps (every 50 of 201 epochs) identify the same convention as the
    whole curve, and a scaled copy (a minibatch-like loss) is refused."""
    model, X, Y, coords, mon, lr, factor = _train("mse")
    losses = mon.losses()
    assert list(losses.index) == [0, 50, 100, 150, 200] and np.isfinite(losses).all()
    out, first = model_outputs(model, X), model_outputs(mon.initial_model, X)
    r = loss_convention(losses.to_numpy(), Y, out, initial_outputs=first, steps=losses.index, final_step=EPOCHS - 1)
    assert r["convention"] == "mse" and r["checked"] == "last value and first value"
    assert r["factor"] == pytest.approx(factor)
    assert loss_convention(losses.to_numpy() / 3, Y, out, steps=losses.index)["convention"] is None
    # the first value is checked only when it was taken at step 0
    late = losses.iloc[1:]
    assert loss_convention(late.to_numpy(), Y, out, initial_outputs=first, steps=late.index)["checked"] == "last value"
    with pytest.raises(rp.errors.ValueInputError, match="`steps` must be 5 increasing"):
        loss_convention(losses.to_numpy(), Y, out, steps=[0, 50, 50, 100, 200])
    with pytest.raises(rp.errors.ValueInputError, match="`final_step`"):
        loss_convention(losses.to_numpy(), Y, out, steps=losses.index, final_step=10)


@pytest.mark.parametrize("kind", ["mse", "sum"])
def test_analyze_reads_the_convention_off_the_monitor(kind):
    """A torch MSELoss loop at lr/c trains like the summed loss at lr: analyze's ReLN runs at the
    same rate on the summed loss for both loops (before, the MSELoss loop's lr was taken as a
    rate on the summed loss, 1/c = P·m/2 = 720 times too fast)."""
    model, X, Y, coords, mon, lr, factor = _train(kind)
    res = _analyze(model, X, Y, coords, mon)
    assert res.reln.lr == pytest.approx(EFFECTIVE_LR)
    (note,) = _notes(res)
    assert "5 snapshots" in note and "first value checked" in note
    assert "gradient descent at lr" in note and "reproduces its steps 50–200" in note
    assert ("torch MSELoss" in note) == (kind == "mse") and ("are the summed" in note) == (kind == "sum")


def test_the_monitor_knows_the_last_step_when_it_is_not_a_snapshot():
    """230 steps snapshotted every 50 (last snapshot 200), no `epochs` told: the ReLN runs the
    230 epochs of training and the last loss is checked 29 updates before the trained model
    (before, epochs were the last snapshot + 1 = 201 and that check failed: "matches none")."""
    model, X, Y, coords, mon, lr, factor = _train("mse", steps=230, tell_epochs=False)
    assert mon.steps[-1] == 200 and mon.last_step == 229
    res = _analyze(model, X, Y, coords, mon)
    assert "epochs 230: the last step the training monitor was updated at + 1" in res.notes
    (note,) = _notes(res)
    assert "torch MSELoss" in note and res.reln.lr == pytest.approx(EFFECTIVE_LR)
    assert res.reln.loss_curve_.size == 230


def test_analyze_says_when_the_monitor_losses_match_no_convention():
    model, X, Y, coords, mon, lr, _ = _train("adam")
    res = _analyze(model, X, Y, coords, mon)
    (note,) = _notes(res)
    # its losses are MSELoss values, but no full-batch gradient descent gives them
    assert "torch MSELoss" in note and "does not reproduce its steps 50–200" in note and "Adam" in note
    assert res.reln.lr == pytest.approx(lr)  # as given, and said so


def test_analyze_says_when_the_convention_cannot_be_checked():
    model, X, Y, coords, mon, lr, _ = _train("sum", log_loss=False)
    assert mon.losses().isna().all()
    res = _analyze(model, X, Y, coords, mon)
    (note,) = _notes(res)
    assert note.startswith("loss convention not checked: the training monitor kept fewer than two losses")
    assert "MSELoss()" in note and res.reln.lr == pytest.approx(lr)


def test_monitor_losses_survive_a_store(tmp_path):
    X, Y, coords = rp.tasks.contextual_task(3)
    model = rp.tasks.paper_network(3, width=10, seed=0)
    with rp.TrainingMonitor(model, X, coords=coords, every=1, store=tmp_path / "m.zarr") as mon:
        mon.update(0, 2.5)
        mon.update(1)
        mon.update(2, 1.5)
    with rp.TrainingMonitor(model, X, coords=coords, every=1, store=tmp_path / "m.zarr") as again:
        losses = again.losses()
    assert list(losses.index) == [0, 1, 2]
    np.testing.assert_array_equal(losses.to_numpy(), [2.5, np.nan, 1.5])


def _dense(kind: str, dtype=torch.float64, epochs: int = 60):
    """A loop of *kind* on the 3-context task; its logged losses and the untrained copy."""
    import copy

    X, Y, _ = rp.tasks.contextual_task(3)
    P, m = Y.shape
    model = rp.tasks.paper_network(3, width=40, seed=1).to(dtype)
    X, Y = X.to(dtype), Y.to(dtype)
    initial = copy.deepcopy(model)
    c = 1.0 if kind == "sum" else 2.0 / (P * m)
    lr = EFFECTIVE_LR / c
    opt = {"adam": lambda p: torch.optim.Adam(p, lr=1e-3),
           "momentum": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
           "weight_decay": lambda p: torch.optim.SGD(p, lr=lr, weight_decay=1e-3)}.get(
        kind, lambda p: torch.optim.SGD(p, lr=lr))(model.parameters())
    gen = torch.Generator().manual_seed(0)
    curve = []
    for _ in range(epochs):
        opt.zero_grad()
        rows = torch.randperm(P, generator=gen)[: P // 2] if kind == "minibatch" else slice(None)
        out = model(X[rows])
        loss = 0.5 * ((out - Y[rows]) ** 2).sum() if kind == "sum" else torch.nn.functional.mse_loss(out, Y[rows])
        curve.append(loss.item())
        loss.backward()
        opt.step()
    return model, initial, X, Y, np.array(curve), lr, c


@pytest.mark.parametrize("kind,dtype", [("sum", torch.float64), ("mse", torch.float64), ("mse", torch.float32)])
def test_replay_reproduces_plain_gradient_descent(kind, dtype):
    from relu_probe.reln.dynamics import replays_gradient_descent

    _, initial, X, Y, curve, lr, c = _dense(kind, dtype)
    r = replays_gradient_descent(initial, X, Y, curve, lr=lr, factor=c)
    assert r["reproduced"] is True and r["checked"] == list(range(1, 60))
    assert r["worst"] < (1e-12 if dtype == torch.float64 else 1e-4)
    # a copy taken one update after the first logged loss (a monitor updated after opt.step())
    after = _dense(kind, dtype, epochs=1)[0]
    assert replays_gradient_descent(after, X, Y, curve, lr=lr, factor=c)["reproduced"] is True
    # the same loop at another rate does not reproduce it
    assert replays_gradient_descent(initial, X, Y, curve, lr=1.5 * lr, factor=c)["reproduced"] is False


@pytest.mark.parametrize("kind", ["adam", "momentum", "weight_decay", "minibatch"])
def test_replay_tells_other_optimisers_apart(kind):
    from relu_probe.reln.dynamics import REPLAY_RTOL, replays_gradient_descent

    _, initial, X, Y, curve, lr, c = _dense(kind, epochs=200)  # the whole replay window
    r = replays_gradient_descent(initial, X, Y, curve, lr=lr, factor=c)
    assert r["reproduced"] is False and r["worst"] > REPLAY_RTOL


def test_replay_needs_a_logged_step_it_can_reach():
    from relu_probe.reln.dynamics import REPLAY_STEPS, replays_gradient_descent

    _, initial, X, Y, curve, lr, c = _dense("mse", epochs=3)
    r = replays_gradient_descent(initial, X, Y, curve[:1], lr=lr, factor=c)
    assert r["reproduced"] is None and r["checked"] == []
    far = replays_gradient_descent(initial, X, Y, curve[:2], lr=lr, factor=c, steps=[0, 10 * REPLAY_STEPS + 1])
    assert far["reproduced"] is None


def test_analyze_does_not_compare_an_adam_curve_that_looks_like_a_mean_loss():
    """An Adam loop's logged MSELoss values match the mean convention at both ends; the replay
    from the untrained network shows they are not gradient descent, so the curve is shown but
    not compared (before, it was compared epoch by epoch at lr × c)."""
    model, initial, X, Y, curve, _, _ = _dense("adam", epochs=200)
    _, _, coords = rp.tasks.contextual_task(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rp.analyze(model, X, Y=Y, coords=coords, by="context", within="object", attribution=False,
                         literature=False, loss_curve=curve, lr=1e-3, init_network=initial, predict=False)
    (note,) = [n for n in res.notes if n.startswith("loss curve:")]
    assert "torch MSELoss" in note and "does not reproduce" in note and "not compared" in note
    assert "reln" not in (res.comparison or {})
    assert res.reln.lr == pytest.approx(1e-3)


def test_a_curve_that_cannot_be_replayed_says_its_loop_is_assumed():
    """Without the untrained network the loop cannot be replayed: the same Adam curve is then
    compared as full-batch gradient descent, and the note says that this is an unchecked
    assumption and how to check it (before, it read as confirmed)."""
    model, _, X, Y, curve, _, _ = _dense("adam", epochs=200)
    _, _, coords = rp.tasks.contextual_task(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rp.analyze(model, X, Y=Y, coords=coords, by="context", within="object", attribution=False,
                         literature=False, loss_curve=curve, lr=1e-3, predict=False)
    (note,) = [n for n in res.notes if n.startswith("loss curve:")]
    assert "the loop itself was not replayed (no untrained copy of the network: pass `init_network=`" in note
    assert "taken as full-batch gradient descent, which is not checked" in note


def test_a_reln_still_on_its_plateau_is_said_to_be():
    """A two-hidden-layer MLP at PyTorch's default init learns at once; the layered ReLN from the
    default small init (no untrained copy given) has not left its plateau after the same
    epochs: a note says so and how to give the initial state (before: only the numbers)."""
    X, Y, coords = rp.tasks.contextual_task(3)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                                torch.nn.ReLU(), torch.nn.Linear(32, Y.shape[1])).double()
    opt = torch.optim.SGD(model.parameters(), lr=2e-3)
    curve = []
    for _ in range(600):
        opt.zero_grad()
        loss = 0.5 * ((model(X) - Y) ** 2).sum()
        curve.append(loss.item())
        loss.backward()
        opt.step()
    assert curve[-1] < 0.5 * curve[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rp.analyze(model, X, Y=Y, coords=coords, by="context", within="object", attribution=False,
                         literature=False, loss_curve=curve, lr=2e-3, predict=False)
    (note,) = _notes(res, "initial plateau")
    assert res.reln.loss_curve_[-1] > 0.5 * res.reln.loss_curve_[0]
    assert "the ReLN ends at" in note and "pass the untrained network" in note


def test_replay_stops_at_its_time_budget(monkeypatch):
    """A replay past its budget compares only the logged steps it reached (none: not checked)."""
    import relu_probe.reln.dynamics as D

    _, initial, X, Y, curve, lr, c = _dense("mse", epochs=60)
    monkeypatch.setattr(D, "REPLAY_BUDGET_S", 0.0)
    r = D.replays_gradient_descent(initial, X, Y, curve, lr=lr, factor=c)
    assert r["reproduced"] is None and r["checked"] == []  # two steps reached: no step with both shifts


def test_a_layered_reln_that_diverges_is_a_note_not_a_lost_analysis():
    """No stability bound is computed for a layered ReLN: a given lr is said to be unchecked,
    and a divergence skips the ReLN with a note; the pathways and scores stand (before, the
    whole analysis raised after all its work)."""
    X, Y, coords = rp.tasks.contextual_task(3)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                                torch.nn.ReLU(), torch.nn.Linear(16, Y.shape[1])).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rp.analyze(model, X, Y=Y, coords=coords, by="context", within="object", attribution=False,
                         literature=False, lr=50.0, epochs=50, predict=False)
    assert res.reln is None and res.scores is not None and res.pathways is not None
    assert [n for n in res.notes if "is not checked for stability" in n]
    (skipped,) = [n for n in res.notes if n.startswith("ReLN skipped:")]
    assert "diverged" in skipped


def test_class_indices_as_targets_are_noted():
    X, Y, coords = rp.tasks.contextual_task(3)
    labels = torch.as_tensor(coords["object"] % 4)  # 4 class indices, one output
    model = rp.tasks.paper_network(3, width=20, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rp.analyze(model, X, Y=labels, coords=coords, by="context", within="object", attribution=False,
                         literature=False, lr=1e-4, epochs=5, predict=False)
    assert [n for n in res.notes if n.startswith("`Y` is 1-D with 4 integer values")]


def test_the_activity_fallback_of_the_importance_is_explained():
    """A ReLU followed by pooling has no Linear / Conv readout: the default importance falls
    back to 'activity', and a note names the site (before: only params said 'activity'); the
    steps' warnings are in the notes too."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 2))
    X = torch.randn(12, 1, 6, 6)
    coords = {"context": np.repeat([0, 1], 6), "object": np.tile(np.arange(6), 2)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rp.analyze(model, X, coords=coords, by="context", within="object", attribution=False,
                         literature=False, null=0)
    assert res.params["importance"] == "activity"
    (note,) = [n for n in res.notes if n.startswith("importance: 'activity'")]
    assert "site '1': no Linear / Conv reads its output: it goes to adaptive_avg_pool2d (in '2')" in note
    assert [n for n in res.notes if "K = 2" in n]  # the scores' degenerate-data warnings, kept as notes


def test_the_layers_a_reln_does_not_model_are_named():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 16, 2)).double().eval()
    X = torch.randn(12, 1, 6, 6, dtype=torch.float64)
    Y = torch.randn(12, 2, dtype=torch.float64)
    coords = {"context": np.repeat([0, 1, 2], 4), "object": np.tile(np.arange(4), 3)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rp.analyze(model, X, Y=Y, coords=coords, by="context", within="object", attribution=False,
                         literature=False, null=0, lr=1e-4, epochs=5, predict=False, units="channel")
    (note,) = [n for n in res.notes if "are not modelled" in n]
    assert "convolution (weight sharing over positions), normalisation layers" in note
    mlp = rp.tasks.paper_network(3, width=20, seed=0)
    X3, Y3, c3 = rp.tasks.contextual_task(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = rp.analyze(mlp, X3, Y=Y3, coords=c3, by="context", within="object", attribution=False,
                           literature=False, null=0, lr=1e-4, epochs=5, predict=False)
    assert not [n for n in plain.notes if "are not modelled" in n]


def test_a_divergence_is_its_own_error():
    """analyze tells a diverged ReLN from other bad values by its class, not by its message."""
    from relu_probe.reln.dynamics import check_divergence

    with pytest.raises(rp.errors.DivergenceError, match="diverged .* at epoch 1"):
        check_divergence([1.0, np.inf], 1.0, lr=0.5, what="the test curve")
    assert issubclass(rp.errors.DivergenceError, rp.errors.ValueInputError)  # old `except` clauses still catch it
