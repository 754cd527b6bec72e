"""A small BERT with ReLU feed-forwards on three sequence tasks: which FFN neurons does each task use?

Every input is ``[task token, x_1 … x_8]`` with values 0–7 (:func:`relu_probe.testing.multitask_sequences`,
built here, no download); the task token selects the rule answered at every value token:

* ``parity``: is ``x_i`` odd?  * ``magnitude``: is ``x_i >= 4``?  * ``repeat``: is ``x_i == x_{i-1}``?

Every value sequence appears under all three tasks, as in the contextual tasks of Jarvis et al.
(*Make Haste Slowly*, ICLR 2025): the task is the context, the sequence the item. The model is a
2-layer ``BertForTokenClassification`` built from a config with ``hidden_act="relu"``
(:func:`relu_probe.testing.bert_token_classifier`; the ``hf`` extra, ``transformers``), so
every feed-forward block has one ``nn.ReLU`` on ``(batch, seq, ffn)`` tensors.

Post-LN BERT is sensitive to the learning rate: at 3e-3 it learns ``parity`` and
``magnitude`` but stalls on ``repeat`` (≈ 65 % after 60 epochs); at 1e-3 (the default here)
``repeat`` stays on a plateau for some 30 epochs and is then learned (≈ 100 % held out after
60 epochs). Printed accuracies are on held-out sequences.

``rp.analyze(..., by="task", within="sequence", samples="position")`` then records the
feed-forward ReLUs with the *tokens* as samples (one sample per token, coords ``input``,
``position`` and ``token``; the per-input ``task`` and ``sequence`` are broadcast to the
tokens) and finds each layer's pathways: neurons on for all three tasks, for two, for one.
Input attributions attribute each sample to its own input row, so with tokens as samples they
are skipped (the report's Notes say so); record with ``units="channel"`` (one sample per
input) to attribute the pathways to the input positions through the token embedding.
The report is ``OUT/transformer_tasks/report.html``.

    python examples/transformer_tasks.py                  # ≈1 min on one CPU core
    python examples/transformer_tasks.py --quick          # a smoke run
    python examples/transformer_tasks.py --export saved/  # also write files for the CLI:
    relu-probe analyze --model examples/transformer_tasks.py:build_model --weights saved/weights.pt \\
        --inputs saved/inputs.npz --by task --within sequence --samples position
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

import relu_probe as rp
from relu_probe.testing import bert_token_classifier, fit_token_model, multitask_sequences, token_accuracy

TASKS = ("parity", "magnitude", "repeat")
LENGTH, VALUES = 8, 8
#: tokens as samples: one sample per (sequence, position)
RECORDING = {"samples": "position"}
CLI_RECORDING = ["--samples", "position"]


def sequences(n: int, seed: int):
    return multitask_sequences(n, tasks=TASKS, length=LENGTH, n_values=VALUES, seed=seed)


def build_model() -> nn.Module:
    """The untrained network (also the CLI's ``--model examples/transformer_tasks.py:build_model``)."""
    return bert_token_classifier(sequences(1, 0), layers=2, hidden=64, ffn=256, heads=4, seed=0)


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=256, help="training sequences (each under 3 tasks)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default="reports", help="output folder (default ./reports)")
    parser.add_argument("--export", metavar="DIR", help="also save weights.pt and inputs.npz for `relu-probe analyze`")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 64 sequences, 3 epochs")
    args = parser.parse_args(argv)
    n, epochs = (64, 3) if args.quick else (args.sequences, args.epochs)

    train, held = sequences(n, 0), sequences(max(16, n // 2), 7)
    model = build_model()
    losses = fit_token_model(model, train, epochs=epochs, lr=args.lr, batch_size=32)
    acc = token_accuracy(model, held)
    print(f"loss {losses[0]:.3f} → {losses[-1]:.4f} after {epochs} epochs; held-out accuracy: "
          + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))

    names = ["task token"] + [f"x{i}" for i in range(1, LENGTH + 1)]
    coords = {"task": held.coords["task"], "sequence": held.coords["sequence"]}
    res = rp.analyze(model, held.input_ids, coords=coords, by="task", within="sequence", feature_names=names,
                     literature=not args.quick, **RECORDING,
                     title="BERT (2 layers, ReLU FFN) on three sequence tasks: held-out accuracy "
                     + ", ".join(f"{k} {v:.2f}" for k, v in acc.items()))
    print(res)
    out = Path(args.out) / "transformer_tasks"
    res.save(out / "analysis", overwrite=True)
    if args.export:
        export = Path(args.export)
        export.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), export / "weights.pt")
        np.savez(export / "inputs.npz", X=held.input_ids.numpy(), names=np.array(names),
                 task=coords["task"].astype(str), sequence=coords["sequence"])
    report = res.to_html(out / "report.html")
    print(report)
    return report


if __name__ == "__main__":
    torch.set_num_threads(1)  # a small model: one thread is fastest, and shares a busy CPU best
    main()
