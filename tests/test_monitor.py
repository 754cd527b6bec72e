"""TrainingMonitor: snapshots during training, in memory or streamed to zarr, scores over steps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import xarray as xr

import relu_probe as rp
from relu_probe import errors
from relu_probe import testing as T


@pytest.fixture(scope="module")
def task():
    return rp.tasks.contextual_task(3)


def train_with(monitor, model, task, epochs):
    X, Y, _ = task
    return rp.tasks.train_full_batch(model, X, Y, epochs=epochs, callback=monitor.update)


def test_snapshots_match_records_taken_at_the_same_weights(task):
    X, Y, coords = task
    model = rp.tasks.paper_network(3, seed=2)
    mon = rp.TrainingMonitor(model, X, coords=coords, every=100, by="context", within="object")
    copies = {}
    losses = rp.tasks.train_full_batch(
        model, X, Y, epochs=301,
        callback=lambda e, loss: (mon.update(e, loss), copies.setdefault(e, rp.record(model, X, coords=coords, values=True)) if e % 100 == 0 else None),
    )
    assert mon.steps == [0, 100, 200, 300]
    ds = mon.to_dataset()
    assert ds.gate.dims == ("step", "sample", "unit")
    assert ds.importance.dims == ("step", "unit") and ds.loss.dims == ("step",)
    np.testing.assert_allclose(ds.loss.values, losses[[0, 100, 200, 300]])
    for step, ref in copies.items():
        xr.testing.assert_identical(ds.gate.sel(step=step, drop=True), ref.gate)
        np.testing.assert_allclose(ds.importance.sel(step=step).sum(), 1.0, rtol=1e-5)
    assert model.training  # the monitor restored train mode
    T.assert_no_hooks(model)


def test_scores_and_pathways_over_time_equal_per_snapshot_analysis(task):
    X, Y, coords = task
    model = rp.tasks.paper_network(3, seed=3)
    mon = rp.TrainingMonitor(model, X, coords=coords, every=400, by="context", within="object")
    train_with(mon, model, task, 801)
    table = mon.scores()
    assert list(table.index) == [0, 400, 800]
    assert {"shared_score", "node_reuse_score", "modularity_score", "mixed_selectivity_score", "loss"} <= set(table.columns)
    ds = mon.to_dataset()
    snap = ds.sel(step=800)
    expected = rp.scores(snap.drop_vars(["importance", "loss"]), by="context", within="object",
                         importance=snap["importance"], literature=False)
    for name, value in expected.items():
        assert table.loc[800, name] == pytest.approx(value, abs=1e-12)
    masses = mon.pathways_over_time()
    assert masses.dims == ("step", "pathway")
    np.testing.assert_allclose(masses.sum("pathway").values, 1.0, rtol=1e-9)
    pw = rp.find_pathways(snap.drop_vars(["importance", "loss"]), "context", "object", importance=snap["importance"])
    for contexts, mass in zip(pw.mass["contexts"].values, pw.mass.values):
        column = [i for i, c in enumerate(masses["contexts"].values) if c == tuple(contexts)]
        assert masses.sel(step=800).values[column[0]] == pytest.approx(mass)


def test_store_streams_snapshots_and_continues(tmp_path, task):
    X, Y, coords = task
    reference_model = rp.tasks.paper_network(3, seed=4)
    memory = rp.TrainingMonitor(reference_model, X, coords=coords, every=50)
    train_with(memory, reference_model, task, 151)

    model = rp.tasks.paper_network(3, seed=4)
    path = tmp_path / "mon.zarr"
    first = rp.TrainingMonitor(model, X, coords=coords, every=50, store=path)
    state = {}

    def stop_at_100(epoch, loss):
        first.update(epoch, loss)
        if epoch == 100:
            state["weights"] = {k: v.clone() for k, v in model.state_dict().items()}
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rp.tasks.train_full_batch(model, X, Y, epochs=151, callback=stop_at_100)
    assert first.steps == [0, 50, 100]
    # a new process continues the store: existing steps are kept and skipped
    again = rp.TrainingMonitor(model, X, coords=coords, every=50, store=path)
    assert again.steps == [0, 50, 100]
    assert again.update(100, 1.0) is False
    model.load_state_dict(state["weights"])
    rp.tasks.train_full_batch(model, X, Y, epochs=51, callback=lambda e, loss: again.update(e + 100, loss))
    assert again.steps == [0, 50, 100, 150]
    stored = rp.load(path)
    assert stored.gate.dtype == bool and stored.gate.chunks is not None
    xr.testing.assert_identical(memory.to_dataset(), stored.load())


def test_another_run_into_a_continued_store_is_refused_not_merged(tmp_path, task):
    """A training restarted from scratch with another seed, pointed at the store of the first
    run: its step 0 is already stored, so it would be skipped and the new run's later
    snapshots appended to the old run's. The first stored step it reaches is compared instead."""
    X, Y, coords = task
    path = tmp_path / "mon.zarr"
    model = rp.tasks.paper_network(3, seed=4)
    with rp.TrainingMonitor(model, X, coords=coords, every=50, store=path) as first:
        rp.tasks.train_full_batch(model, X, Y, epochs=101, callback=first.update)
    other = rp.tasks.paper_network(3, seed=7)
    with rp.TrainingMonitor(other, X, coords=coords, every=50, store=path) as again:
        with pytest.raises(errors.StoreMismatchError, match=r"already holds step 0, and this run's gates at step 0 "
                                                            r"differ from the stored ones in [0-9.]+% of"):
            rp.tasks.train_full_batch(other, X, Y, epochs=151, callback=again.update)
    assert list(rp.load(path).step.values) == [0, 50, 100]
    # the same run replayed (same seed, deterministic loop) is the stored run: it continues
    same = rp.tasks.paper_network(3, seed=4)
    with rp.TrainingMonitor(same, X, coords=coords, every=50, store=path) as replay:
        rp.tasks.train_full_batch(same, X, Y, epochs=151, callback=replay.update)
    assert list(rp.load(path).step.values) == [0, 50, 100, 150]


def test_store_of_another_layout_is_refused(tmp_path, task):
    X, Y, coords = task
    path = tmp_path / "mon.zarr"
    mon = rp.TrainingMonitor(rp.tasks.paper_network(3), X, coords=coords, store=path)
    mon.snapshot(0)
    other = rp.TrainingMonitor(rp.tasks.paper_network(3, depth=2), X, coords=coords, store=path)
    with pytest.raises(errors.StoreMismatchError, match="sites"):
        other.snapshot(1)
    rp.record(rp.tasks.paper_network(3), X, store=tmp_path / "gates.zarr")
    with pytest.raises(errors.StoreError, match="already holds a relu_probe gate store; pass overwrite=True"):
        rp.TrainingMonitor(rp.tasks.paper_network(3), X, store=tmp_path / "gates.zarr")


def test_bad_arguments(task):
    X, _, coords = task
    model = rp.tasks.paper_network(3)
    with pytest.raises(errors.ValueInputError, match="`every` must be an integer >= 1, got 0"):
        rp.TrainingMonitor(model, X, every=0)
    mon = rp.TrainingMonitor(model, X, coords=coords)
    with pytest.raises(errors.ValueInputError, match="no snapshot yet"):
        mon.to_dataset()
    mon.snapshot(10)
    with pytest.raises(errors.ValueInputError, match="must increase"):
        mon.snapshot(5)
    with pytest.raises(errors.ValueInputError, match="`by` is needed"):
        mon.scores()
    with pytest.raises(errors.InputError, match="torch.nn.Module"):
        rp.TrainingMonitor("model", X)


def test_models_without_readouts_use_activity_importance():
    model = T.FunctionalReLUNet("F.relu")
    mon = rp.TrainingMonitor(model, T.toy_inputs(8), coords={"c": np.arange(8) % 2})
    mon.snapshot(0)
    assert mon.to_dataset().importance.sum().item() == pytest.approx(1.0, rel=1e-5)


def test_continuing_a_store_with_another_probe_set_is_refused(tmp_path, task):
    X, _, coords = task
    path = tmp_path / "mon.zarr"
    model = rp.tasks.paper_network(3)
    with rp.TrainingMonitor(model, X, coords=coords, store=path) as mon:
        mon.snapshot(0)
    with pytest.raises(errors.StoreMismatchError, match="with other probe inputs"):
        rp.TrainingMonitor(model, X.flip(0), coords=coords, store=path)
    other = {**coords, "object": np.roll(np.asarray(coords["object"]), 1)}
    with pytest.raises(errors.StoreMismatchError, match=r"`coords\['object'\]` differs at probe sample 0"):
        rp.TrainingMonitor(model, X, coords=other, store=path)
    with rp.TrainingMonitor(model, X, coords=coords, store=path) as again:  # the same probe set continues
        assert again.steps == [0] and again.snapshot(1)
    assert list(rp.load(path).step.values) == [0, 1]
    # another snapshot interval, or other samples, are named as such (not as other coords)
    with pytest.raises(errors.StoreMismatchError, match=r"with every=40: its snapshots were recorded with every=100, "
                                                        r"and the gate flips"):
        rp.TrainingMonitor(model, X, coords=coords, store=path, every=40)
    with pytest.raises(errors.StoreMismatchError, match=r"with samples='position': its snapshots were recorded "
                                                        r"with samples='input'"):
        rp.TrainingMonitor(model, X, coords=coords, store=path, samples="position")
    # another importance would change the meaning of the stored importance series midway
    with pytest.raises(errors.StoreMismatchError, match=r"with importance='activity': its snapshots were recorded "
                                                        r"with importance='readout', and the stored importance"):
        rp.TrainingMonitor(model, X, coords=coords, store=path, importance="activity")
    assert "monitor_importance" not in rp.load(path).attrs


def test_per_snapshot_warnings_are_given_once_per_kind(task):
    """The analyses of every snapshot warn alike (here: with K = 2 contexts, modularity is
    NaN at every step): one warning per kind, naming the snapshots, not one per step."""
    X, Y, coords = task
    keep = np.isin(np.asarray(coords["context"]), [0, 1])
    X2, Y2 = X[keep], Y[keep]
    coords2 = {k: np.asarray(v)[keep] for k, v in coords.items()}
    model = rp.tasks.paper_network(3, seed=1)
    mon = rp.TrainingMonitor(model, X2, coords=coords2, every=50, by="context", within="object")
    rp.tasks.train_full_batch(model, X2, Y2, epochs=151, callback=mon.update)
    with pytest.warns(errors.DegenerateDataWarning) as caught:
        mon.scores()
    modularity = [w for w in caught if "modularity_score" in str(w.message)]
    assert len(modularity) == 1 and str(modularity[0].message).startswith("at every snapshot: ")


def test_structure_over_time_on_a_probe_subset_needs_the_training_labels(task):
    X, Y, coords = task
    probe = slice(0, None, 2)
    probe_coords = {k: np.asarray(v)[probe] for k, v in coords.items()}
    model = rp.tasks.paper_network(3, seed=4)
    mon = rp.TrainingMonitor(model, X[probe], coords=probe_coords, every=50, by="context", within="object",
                             lr=rp.tasks.PAPER_LR)
    rp.tasks.train_full_batch(model, X, Y, epochs=101, callback=mon.update)
    with pytest.raises(errors.ValueInputError, match=r"`Y` has 24 rows but the monitor's probe set has 12 samples"):
        mon.structure_over_time(Y, X=X)
    out = mon.structure_over_time(Y, X=X, coords=coords)
    assert list(out["step"].values) == [0, 50, 100]


@pytest.mark.parametrize("streamed", [False, True])
def test_scores_weigh_every_cell_the_same_like_find_pathways(tmp_path, streamed):
    """The monitor's scores and pathway masses on a probe set with some cells repeated
    (context 0's samples four times, context 2's twice) are the exact cell-balanced ones
    find_pathways gives with ``model=`` (hand values: 3.375 / 17.375 = 0.1942 for the full set,
    7 / 26.0625 = 0.2686 for each pair). Before, the stored readout importance was used
    unbalanced: the pairs weighed 0.345 / 0.288 / 0.173."""
    net = T.scaled_pathway_net()
    context = net.coords["context"]
    rows = np.concatenate([np.arange(context.size), np.repeat(np.flatnonzero(context == 0), 3),
                           np.flatnonzero(context == 2)])
    X, coords = net.X[rows], {k: v[rows] for k, v in net.coords.items()}
    mon = rp.TrainingMonitor(net.model, X, coords=coords, by="context", within="object", values=True,
                             store=tmp_path / "mon.zarr" if streamed else None)
    mon.snapshot(0)
    shared = 3.375 / (3.375 + 7 * 2)
    assert net.expected["masses"][(0, 1, 2)] == pytest.approx(shared, rel=1e-12)
    assert mon.scores().loc[0, "shared_score"] == pytest.approx(shared, rel=1e-6)  # importance stored in float32
    ds = rp.record(net.model, X, coords=coords, values=True)
    direct = rp.scores(rp.find_pathways(ds, "context", "object", model=net.model), ds, literature=False)
    table = mon.scores()
    for name, value in direct.items():
        if np.isfinite(value):
            assert table.loc[0, name] == pytest.approx(value, rel=1e-6), name
    over_time = mon.pathways_over_time()
    for contexts, mass in net.expected["masses"].items():
        column = [i for i, c in enumerate(over_time["contexts"].values) if c == contexts]
        assert over_time.sel(step=0).values[column[0]] == pytest.approx(mass, rel=1e-6)


def _train_with_mean_loss(model, X, Y, mon, lr, steps, scale=1.0):
    """The user's own loop: torch's MSELoss (mean-reduced), plain SGD, the monitor updated with
    each step's loss (times *scale*) before the step."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(steps):
        loss = torch.nn.functional.mse_loss(model(X), Y)
        mon.update(step, loss=scale * loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_structure_over_time_reads_a_mean_loss_convention(task):
    """A loop on torch's mean-reduced MSELoss at rate r is gradient descent on the summed loss
    ½Σ‖y − f‖² at c·r with c = 2/(P·m): the prediction must run at that rate (it used to take r
    as a summed-loss rate, 1/c = 720 times too fast on this task), and say so in its attrs."""
    X, Y, coords = task
    P, m = Y.shape
    c = 2.0 / (P * m)
    model = rp.tasks.paper_network(3, seed=5)
    lr = rp.tasks.PAPER_LR / c
    mon = rp.TrainingMonitor(model, X, coords=coords, every=50, by="context", within="object", lr=lr)
    _train_with_mean_loss(model, X, Y, mon, lr, 101)
    with warnings.catch_warnings():
        warnings.simplefilter("error", errors.ReluProbeWarning)
        out = mon.structure_over_time(Y)
    assert out.attrs["loss_factor"] == pytest.approx(c, rel=1e-12)
    assert out.attrs["lr"] == pytest.approx(rp.tasks.PAPER_LR, rel=1e-12) and out.attrs["lr_given"] == lr
    assert any("mean" in note for note in out.attrs["notes"])


def test_structure_over_time_warns_when_the_losses_match_no_convention(task):
    X, Y, coords = task
    model = rp.tasks.paper_network(3, seed=5)
    lr = rp.tasks.PAPER_LR
    mon = rp.TrainingMonitor(model, X, coords=coords, every=50, by="context", within="object", lr=lr)
    _train_with_mean_loss(model, X, Y, mon, lr, 101, scale=3.0)  # logged ×3: neither summed nor mean
    with pytest.warns(errors.ReluProbeWarning, match="match none of the conventions of full-batch gradient descent"):
        out = mon.structure_over_time(Y)
    assert out.attrs["loss_factor"] == 1.0


def test_structure_over_time_refuses_a_deeper_network_by_name(task):
    X, Y, coords = task
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                                torch.nn.ReLU(), torch.nn.Linear(16, Y.shape[1])).to(X.dtype)
    mon = rp.TrainingMonitor(model, X, coords=coords, every=50, by="context", within="object", lr=1e-4)
    mon.update(0)
    with pytest.raises(errors.ValueInputError, match=r"structure_over_time predicts the structure of a "
                                                     r"one-hidden-layer ReLU MLP .* it has 3 Linear and 2 ReLU"):
        mon.structure_over_time(Y)
