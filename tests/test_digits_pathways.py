"""Pathways mean their members on a real network: the digits CNN of ``examples/digits_cnn.py``
(scikit-learn's bundled digits, channel units, pathways by digit with ``method="profiles"``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

import relu_probe as rp
from relu_probe.pathways.onsets import profile_on

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from digits_cnn import build_model  # noqa: E402


def trained_cnn(seed: int = 0, epochs: int = 30):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = load_digits()
    images = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(data.target)
    order = rng.permutation(len(images))
    split = int(0.8 * len(order))
    train, test = torch.as_tensor(order[:split]), torch.as_tensor(order[split:])
    model = build_model()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        for batch in train[torch.randperm(len(train))].split(64):
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimiser.step()
    return model, images[test], labels[test].numpy()


def test_digits_cnn_pathways_are_named_after_their_channels():
    torch.set_num_threads(1)
    model, images, digits = trained_cnn()
    ds = rp.record(model, images, coords={"digit": digits}, units="channel", values=True)
    pw = rp.find_pathways(ds, "digit", model=model)
    assert pw.method == "profiles" and pw.sites == ["1", "4", "7"]
    labelled = pw.labels.values >= 0
    own = profile_on(rp.gating_profile(ds, "digit").values)
    sets = np.array([[d in S for d in range(10)] for S in pw.contexts])
    disagree = np.array([not np.array_equal(own[u], sets[p]) for u, p in enumerate(pw.labels.values) if p >= 0])
    np.testing.assert_array_equal(disagree, pw.disagrees.values[labelled])
    # measured: 4 of 44 labelled channel units (naming pathways by the k-means centre: 8 by the
    # same on-rule, 20 by P(on | digit) > 0.5)
    assert disagree.sum() <= 0.15 * labelled.sum(), (int(disagree.sum()), int(labelled.sum()))
    print(f"\ndisagreeing channel units: {int(disagree.sum())} of {int(labelled.sum())} labelled")
