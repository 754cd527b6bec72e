"""A synthetic multi-task sequence task and small Hugging Face transformers with ReLU feed-forwards.

Every input is ``[task token, x_1, …, x_L]`` with values ``x_i`` in ``0 … V-1``; the task
token selects the rule that gives the answer at every value position (:data:`SEQUENCE_RULES`)::

    parity     x_i mod 2
    magnitude  [x_i >= V / 2]
    repeat     [x_i == x_{i-1}]                (0 at the first position)
    new max    [x_i > max(x_1 … x_{i-1})]      (1 at the first position)

Each answer depends only on the prefix ``x_1 … x_i``, so encoders (BERT) and causal decoders
(OPT) can both learn it. ``repeat`` and ``new max`` need attention to earlier tokens;
``parity`` and ``magnitude`` only the token itself. As in the contextual tasks of Jarvis et
al. (*Make Haste Slowly*, ICLR 2025, arXiv 2503.06181), every sequence appears once under
every task: the task is the context, the sequence the item, and the tokens the samples of a
per-token recording.

The models are built from configs (no download): :func:`bert_token_classifier` (BERT,
``hidden_act="relu"``: an ``nn.ReLU`` in every feed-forward block, on ``(batch, seq, ffn)``
tensors) and :func:`opt_token_model` (OPT, ``activation_function="relu"``; OPT's decoder
layers flatten ``(batch · seq, ffn)`` before the feed-forward). Both need the ``hf`` extra
(``transformers``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .._util.checks import check_int, check_real
from ..errors import ValueInputError

__all__ = [
    "SEQUENCE_RULES",
    "IGNORE_LABEL",
    "SequenceTask",
    "multitask_sequences",
    "bert_token_classifier",
    "opt_token_model",
    "token_logits",
    "fit_token_model",
    "token_accuracy",
]

#: Label of positions that carry no answer (the task token, padding); PyTorch's
#: ``cross_entropy`` ignores it by default.
IGNORE_LABEL = -100


def _parity(x: np.ndarray, n_values: int) -> np.ndarray:
    return x % 2


def _magnitude(x: np.ndarray, n_values: int) -> np.ndarray:
    return (2 * x >= n_values).astype(np.int64)


def _repeat(x: np.ndarray, n_values: int) -> np.ndarray:
    out = np.zeros_like(x)
    out[:, 1:] = x[:, 1:] == x[:, :-1]
    return out


def _new_max(x: np.ndarray, n_values: int) -> np.ndarray:
    previous_max = np.maximum.accumulate(x, axis=1)
    out = np.ones_like(x)
    out[:, 1:] = x[:, 1:] > previous_max[:, :-1]
    return out


#: Rule name -> (answers for value arrays ``(n, L)`` given ``V``, the answers' names).
SEQUENCE_RULES: dict[str, tuple[Callable[[np.ndarray, int], np.ndarray], tuple[str, ...]]] = {
    "parity": (_parity, ("even", "odd")),
    "magnitude": (_magnitude, ("low", "high")),
    "repeat": (_repeat, ("new", "repeat")),
    "new max": (_new_max, ("not max", "new max")),
}


class SequenceTask(NamedTuple):
    """Token ids, masks, per-token labels and per-input coords of :func:`multitask_sequences`.

    Attributes
    ----------
    input_ids : torch.Tensor, shape (n, 1 + length), int64
        ``[task token, value tokens …, padding]``; token ids as in :attr:`vocab`.
    attention_mask : torch.Tensor, shape (n, 1 + length), int64
        1 on real tokens, 0 on padding (right-padded).
    labels : torch.Tensor, shape (n, 1 + length), int64
        Class index into :attr:`classes` at every value token; :data:`IGNORE_LABEL` on the
        task token and on padding.
    coords : dict of str to numpy.ndarray
        Per input: ``task`` (rule name), ``sequence`` (index of the value sequence, the item
        shared by all tasks) and ``length`` (number of value tokens).
    classes : tuple of str
        ``"<task>: <answer>"`` for the answers of every task, one task after another.
    vocab : tuple of str
        Token names by id: ``"[PAD]"`` (0), the values ``"0"`` … ``"V-1"``, then
        ``"[<task>]"`` for every task.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    coords: dict[str, np.ndarray]
    classes: tuple[str, ...]
    vocab: tuple[str, ...]

    @property
    def n_labels(self) -> int:
        """Number of output classes over all tasks."""
        return len(self.classes)

    def batches(self, batch_size: int = 64) -> list[dict[str, torch.Tensor]]:
        """The inputs as ``model(**batch)`` dicts (``input_ids``, ``attention_mask``), in order."""
        batch_size = check_int("batch_size", batch_size, minimum=1)
        return [
            {"input_ids": ids, "attention_mask": mask}
            for ids, mask in zip(self.input_ids.split(batch_size), self.attention_mask.split(batch_size))
        ]

    def token_table(self) -> dict[str, np.ndarray]:
        """One entry per value token (task tokens and padding left out), inputs in order,
        positions ascending: ``input`` (row of :attr:`input_ids`), ``position`` (column),
        ``token`` (id), ``label``, and the input's ``task`` and ``sequence``."""
        mask = (self.labels != IGNORE_LABEL).numpy()
        rows, cols = np.nonzero(mask)
        return {
            "input": rows.astype(np.int64),
            "position": cols.astype(np.int64),
            "token": self.input_ids.numpy()[rows, cols],
            "label": self.labels.numpy()[rows, cols],
            "task": self.coords["task"][rows],
            "sequence": self.coords["sequence"][rows],
        }


def multitask_sequences(
    n_sequences: int = 256,
    *,
    tasks: Sequence[str] = ("parity", "magnitude", "repeat"),
    length: int = 8,
    min_length: int | None = None,
    n_values: int = 8,
    repeat_prob: float = 0.3,
    seed: int = 0,
) -> SequenceTask:
    """Random value sequences, each shown once under every task (module docstring).

    Parameters
    ----------
    n_sequences : int, default=256
        Distinct value sequences (items).
    tasks : sequence of str, default=("parity", "magnitude", "repeat")
        Rule names from :data:`SEQUENCE_RULES` (the contexts).
    length : int, default=8
        Value tokens per sequence (the most, with *min_length*).
    min_length : int, optional
        Draw each sequence's length uniformly from ``min_length … length`` and right-pad
        with ``[PAD]`` (attention mask 0); default: every sequence has *length* tokens.
    n_values : int, default=8
        Value vocabulary ``0 … V-1`` (``V >= 2``).
    repeat_prob : float, default=0.3
        Probability that a value repeats its predecessor (otherwise it is drawn uniformly),
        so that the ``repeat`` answers are not rare.
    seed : int, default=0

    Returns
    -------
    SequenceTask
        Input ``j`` is sequence ``j mod n_sequences`` under task ``j // n_sequences``
        (task-major); the task token is at position 0.
    """
    n = check_int("n_sequences", n_sequences, minimum=1)
    length = check_int("length", length, minimum=1)
    n_values = check_int("n_values", n_values, minimum=2)
    low = length if min_length is None else check_int("min_length", min_length, minimum=1)
    if low > length:
        raise ValueInputError(f"`min_length` ({low}) must be at most `length` ({length}).")
    repeat_prob = check_real("repeat_prob", repeat_prob, minimum=0.0)
    if repeat_prob > 1:
        raise ValueInputError(f"`repeat_prob` must be a probability in [0, 1], got {repeat_prob}.")
    if isinstance(tasks, str):
        tasks = [tasks]
    names = [str(t) for t in tasks]
    unknown = [t for t in names if t not in SEQUENCE_RULES]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueInputError(
            f"`tasks` must be distinct names from {sorted(SEQUENCE_RULES)}, got {list(tasks)!r}."
        )
    rng = np.random.default_rng(seed)
    values = rng.integers(0, n_values, size=(n, length))
    repeats = rng.random((n, length)) < repeat_prob
    for i in range(1, length):
        values[:, i] = np.where(repeats[:, i], values[:, i - 1], values[:, i])
    lengths = np.full(n, length) if low == length else rng.integers(low, length + 1, size=n)
    real = np.arange(length)[None, :] < lengths[:, None]
    vocab = ("[PAD]", *(str(v) for v in range(n_values)), *(f"[{t}]" for t in names))
    k = len(names)
    ids = np.zeros((k * n, 1 + length), dtype=np.int64)
    labels = np.full((k * n, 1 + length), IGNORE_LABEL, dtype=np.int64)
    classes: list[str] = []
    offset = 0
    for t, name in enumerate(names):
        rule, answers = SEQUENCE_RULES[name]
        rows = slice(t * n, (t + 1) * n)
        ids[rows, 0] = 1 + n_values + t
        ids[rows, 1:] = np.where(real, 1 + values, 0)
        labels[rows, 1:] = np.where(real, offset + rule(values, n_values), IGNORE_LABEL)
        classes += [f"{name}: {answer}" for answer in answers]
        offset += len(answers)
    mask = np.concatenate([np.ones((k * n, 1), dtype=np.int64), np.tile(real, (k, 1)).astype(np.int64)], axis=1)
    coords = {
        "task": np.array(names, dtype=object)[np.repeat(np.arange(k), n)],
        "sequence": np.tile(np.arange(n, dtype=np.int64), k),
        "length": np.tile(lengths.astype(np.int64), k),
    }
    return SequenceTask(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(labels), coords,
                        tuple(classes), vocab)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the transformer models of relu_probe.testing need transformers: pip install 'relu_probe[hf]'"
        ) from exc
    return transformers


def bert_token_classifier(
    task: SequenceTask,
    *,
    layers: int = 2,
    hidden: int = 64,
    ffn: int = 256,
    heads: int = 4,
    dropout: float = 0.0,
    seed: int = 0,
) -> nn.Module:
    """A randomly initialised ``BertForTokenClassification`` with ReLU feed-forwards for *task*.

    Built from a ``BertConfig`` (``hidden_act="relu"``, vocabulary and positions sized to
    the task, ``num_labels = task.n_labels``); nothing is downloaded. Each of the *layers*
    blocks has one ``nn.ReLU`` (``bert.encoder.layer.<i>.intermediate.intermediate_act_fn``)
    on ``(batch, seq, ffn)`` tensors.
    """
    transformers = _transformers()
    config = transformers.BertConfig(
        vocab_size=len(task.vocab), hidden_size=check_int("hidden", hidden, minimum=1),
        num_hidden_layers=check_int("layers", layers, minimum=1), num_attention_heads=check_int("heads", heads, minimum=1),
        intermediate_size=check_int("ffn", ffn, minimum=1), hidden_act="relu",
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
        max_position_embeddings=task.input_ids.shape[1], type_vocab_size=1, pad_token_id=0,
        num_labels=task.n_labels, id2label=dict(enumerate(task.classes)),
        label2id={c: i for i, c in enumerate(task.classes)},
    )
    torch.manual_seed(seed)
    return transformers.BertForTokenClassification(config).eval()


def opt_token_model(
    task: SequenceTask,
    *,
    layers: int = 2,
    hidden: int = 64,
    ffn: int = 256,
    heads: int = 4,
    dropout: float = 0.0,
    seed: int = 0,
) -> nn.Module:
    """A randomly initialised ``OPTForCausalLM`` with ReLU feed-forwards for *task*.

    Built from an ``OPTConfig`` (``activation_function="relu"``, no download). Its
    vocabulary has ``max(len(task.vocab), task.n_labels)`` entries and the answer classes
    are read off the first ``task.n_labels`` logits (:func:`token_logits`). OPT's decoder
    layers reshape hidden states to ``(batch · seq, hidden)`` before the feed-forward, so
    each block's ``nn.ReLU`` (``model.decoder.layers.<i>.activation_fn``) sees 2-D tensors
    whose first dimension is not the batch.
    """
    transformers = _transformers()
    hidden = check_int("hidden", hidden, minimum=1)
    config = transformers.OPTConfig(
        vocab_size=max(len(task.vocab), task.n_labels), hidden_size=hidden, word_embed_proj_dim=hidden,
        num_hidden_layers=check_int("layers", layers, minimum=1), num_attention_heads=check_int("heads", heads, minimum=1),
        ffn_dim=check_int("ffn", ffn, minimum=1), activation_function="relu", do_layer_norm_before=True,
        dropout=dropout, attention_dropout=dropout, max_position_embeddings=task.input_ids.shape[1],
        pad_token_id=0, bos_token_id=0, eos_token_id=0, enable_bias=True, layerdrop=0.0,
    )
    torch.manual_seed(seed)
    return transformers.OPTForCausalLM(config).eval()


def token_logits(model: nn.Module, batch: dict[str, torch.Tensor], n_labels: int) -> torch.Tensor:
    """Answer logits ``(batch, seq, n_labels)``: the first *n_labels* output logits of
    ``model(**batch)`` (all of them for a token classifier)."""
    logits = model(**batch).logits
    if logits.shape[-1] < n_labels:
        raise ValueInputError(
            f"`model` returns {logits.shape[-1]} logits per token, fewer than the task's {n_labels} classes."
        )
    return logits[..., :n_labels]


def fit_token_model(
    model: nn.Module,
    task: SequenceTask,
    *,
    epochs: int = 20,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> list[float]:
    """Train *model* with Adam on the per-token cross-entropy of the task's answers.

    Positions labelled :data:`IGNORE_LABEL` (task token, padding) carry no loss. Minibatches
    are drawn without replacement each epoch from a generator seeded with *seed*; the model
    is left in eval mode. Returns the mean training loss per epoch.
    """
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(epochs):
        total, count = 0.0, 0
        for rows in torch.randperm(len(task.input_ids), generator=generator).split(batch_size):
            batch = {"input_ids": task.input_ids[rows], "attention_mask": task.attention_mask[rows]}
            logits = token_logits(model, batch, task.n_labels)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), task.labels[rows].flatten(),
                                               ignore_index=IGNORE_LABEL)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            n_tokens = int((task.labels[rows] != IGNORE_LABEL).sum())
            total += float(loss.detach()) * n_tokens
            count += n_tokens
        losses.append(total / max(count, 1))
    model.eval()
    return losses


def token_accuracy(model: nn.Module, task: SequenceTask, *, batch_size: int = 256) -> dict[str, float]:
    """Per task: the fraction of its value tokens whose arg-max answer logit is the label
    (eval mode, no autograd; the model's mode is restored)."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            predicted = torch.cat([token_logits(model, b, task.n_labels).argmax(-1) for b in task.batches(batch_size)])
    finally:
        model.train(training)
    scored = task.labels != IGNORE_LABEL
    correct = (predicted == task.labels) & scored
    out = {}
    for name in dict.fromkeys(task.coords["task"].tolist()):
        rows = torch.from_numpy(task.coords["task"] == name)
        out[name] = float(correct[rows].sum()) / max(int(scored[rows].sum()), 1)
    return out
