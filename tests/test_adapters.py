"""Framework adapters, each exercised by a real framework run."""

from __future__ import annotations

import numpy as np
import torch
from _deps import require

import relu_probe as rp
from relu_probe import testing as T


def test_lightning_callback_monitors_a_real_trainer_run(tmp_path):
    L = require("lightning")
    from relu_probe.adapters.lightning import GatingCallback

    X, Y, coords = rp.tasks.contextual_task(3)

    class PaperModule(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = rp.tasks.paper_network(3, seed=0)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = 0.5 * ((self(x) - y) ** 2).sum()
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=1e-3)

    module = PaperModule()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=24)
    callback = GatingCallback(X, coords=coords, every=10, by="context", within="object", store=tmp_path / "mon.zarr")
    trainer = L.Trainer(max_steps=25, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback],
                        default_root_dir=tmp_path)
    trainer.fit(module, loader)
    mon = callback.monitor
    assert mon.steps == [0, 10, 20, 25]
    ds = rp.load(tmp_path / "mon.zarr")
    assert ds.gate.dims == ("step", "sample", "unit") and ds.sizes["unit"] == 700
    # the last snapshot is the trained module's gates
    final = rp.record(module, X, coords=coords)
    np.testing.assert_array_equal(ds.gate.sel(step=25).values, final.gate.values)
    losses = ds.loss.sel(step=[10, 20]).values
    assert np.isfinite(losses).all() and losses[1] < losses[0] < 96.0
    assert {"shared_score", "mixed_selectivity_score"} <= set(mon.scores().columns)
    T.assert_no_hooks(module)


def test_transformers_callback_monitors_a_tiny_relu_bert(tmp_path):
    transformers = require("transformers")
    from relu_probe.adapters.transformers import GatingTrainerCallback

    config = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=24, hidden_act="relu", max_position_embeddings=16,
                                     num_labels=2)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 40, (32, 8), generator=gen)
    labels = (ids[:, 0] % 2).long()
    train = [{"input_ids": ids[i], "attention_mask": torch.ones(8, dtype=torch.long), "labels": labels[i]}
             for i in range(32)]
    probe = [{"input_ids": ids[:16], "attention_mask": torch.ones(16, 8, dtype=torch.long)}]
    callback = GatingTrainerCallback(probe, coords={"label": labels[:16].numpy()}, every=2, by="label")
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=8,
                                          learning_rate=1e-3, report_to=[], logging_steps=1, save_strategy="no",
                                          use_cpu=True, disable_tqdm=True)
    transformers.Trainer(model=model, args=args, train_dataset=train, callbacks=[callback]).train()
    mon = callback.monitor
    assert mon.steps == [0, 2, 4, 6]
    ds = mon.to_dataset()
    sites = ds.attrs["sites"]
    assert len(sites) == 2 and all("intermediate" in s for s in sites)
    assert ds.attrs["site_kinds"] == ["sequence", "sequence"]
    assert ds.sizes["unit"] == 2 * 24 * 8          # 2 layers × 24 channels × 8 positions
    assert not bool((ds.gate.sel(step=0) == ds.gate.sel(step=6)).all())  # training changed the gates
    assert np.isfinite(ds.loss.sel(step=[2, 4, 6]).values).all()
    pathways = mon.pathways_over_time()  # per site: masses sum to 1 within each layer
    per_site = pathways.groupby("site").sum("pathway")
    assert set(per_site["site"].values) == set(sites)
    np.testing.assert_allclose(per_site.values, 1.0)
    T.assert_no_hooks(model)
