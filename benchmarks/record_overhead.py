"""Recording overhead: time to record the gates of every ReLU / time of a plain forward.

One run measures, on the same batches of three models built here,

* ``relu_probe.record`` (the xarray dataset of gates, every ReLU call a site);
* hand-written forward pre-hooks on the ReLU modules, ``input > 0`` kept per call and joined
  into one (sample × unit) bool tensor at the end: the minimal recorder a user writes;
* captum's ``LayerActivation(model, relus).attribute(x, attribute_to_layer_input=True)``,
  thresholded at 0 (captum keeps one call per module, so it misses the second call of each
  reused ResNet ReLU: it records 9 of the 17 ResNet sites);
* torchlens ``tl.record(model, x, save=tl.func("relu"), activation_transform=gate)`` (its
  fast capture path, keeping only ``output > 0``, which equals ``input > 0`` for a ReLU);
* nnsight ``NNsight(model).trace(x)`` saving ``relu.input > 0`` of every ReLU call (the
  second call of a reused module through ``tracer.iter[1]``);

against ``torch.no_grad()`` forwards. Models: an MLP (1024 → 4 × [1024, ReLU] → 10), the
project's ResNet-18 in torchvision's layout (:func:`relu_probe.testing.resnet18`, 64 channels,
3 × 32 × 32 images; 17 ReLU calls on 9 modules) and a BERT with ReLU feed-forwards built from
a config (:func:`relu_probe.testing.bert_token_classifier`; every token of every position is
recorded, element units). Methods run back to back in each round, rounds are repeated; a
figure is the median over rounds of (method time / plain forward time in that round), and
"best" is the fastest run of the method over the fastest plain run. The same median ratio of
process CPU time is printed too: on a shared machine it moves less with other load than wall
time does (it counts every thread of the process). One torch thread.

Run: ``python benchmarks/record_overhead.py [--rounds 11] [--quick] [--models mlp,resnet18,bert]
[--peers hooks,captum,torchlens,nnsight]``. Target for relu_probe: <= 1.05 on every model.
torchlens and nnsight are optional (``pip install 'relu_probe[bench]'``); a missing one is
reported as such.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import relu_probe as rp
from _rounds import interleaved_rounds
from relu_probe.testing import bert_token_classifier, multitask_sequences, resnet18


# ------------------------------------------------------------------------------------- models
@dataclass
class Case:
    """A model, its batches (tensors or keyword dicts) and its ReLU call sites."""

    name: str
    model: nn.Module
    batches: list[Any]
    relus: list[nn.Module]  # distinct ReLU modules
    calls: list[tuple[str, int]]  # (module path, call index) of every ReLU call, forward order
    n_samples: int = 0
    notes: list[str] = field(default_factory=list)
    record_kwargs: dict = field(default_factory=dict)  # e.g. units="channel" (then no peers)


def mlp_case(n: int, batch: int) -> Case:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(4):
        layers += [nn.Linear(1024, 1024), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(1024, 10)).eval()
    x = torch.randn(n, 1024)
    relus = [m for m in model if isinstance(m, nn.ReLU)]
    calls = [(str(i), 0) for i, m in enumerate(model) if isinstance(m, nn.ReLU)]
    return Case("MLP 4 x 1024", model, list(x.split(batch)), relus, calls, n)


def resnet_case(n: int, batch: int, size: int) -> Case:
    torch.manual_seed(0)
    model = resnet18(num_classes=10).eval()
    x = torch.randn(n, 3, size, size)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    calls = [("relu", 0)] + [(f"layer{s}.{b}.relu", k) for s in range(1, 5) for b in range(2) for k in (0, 1)]
    return Case(f"ResNet-18 (64 ch, 3 x {size} x {size})", model, list(x.split(batch)), relus, calls, n)


def resnet_channel_case(n: int, batch: int, size: int) -> Case:
    case = resnet_case(n, batch, size)
    case.name = f"ResNet-18 (64 ch, 3 x {size} x {size}), channel units"
    case.record_kwargs = {"units": "channel"}
    return case


def bert_case(n: int, batch: int, length: int) -> Case:
    task = multitask_sequences(-(-n // 3), tasks=("parity", "magnitude", "repeat"), length=length - 1)
    model = bert_token_classifier(task, layers=4, hidden=256, ffn=1024, heads=4)
    paths = [f"bert.encoder.layer.{i}.intermediate.intermediate_act_fn" for i in range(4)]
    relus = [model.get_submodule(p) for p in paths]
    batches = task.batches(batch)
    n = sum(len(b["input_ids"]) for b in batches)
    return Case(f"BERT 4 x (256, FFN 1024), {length} tokens", model, batches, relus, [(p, 0) for p in paths], n)


def call(model: nn.Module, batch: Any) -> Any:
    return model(**batch) if isinstance(batch, dict) else model(batch)


def batch_size(batch: Any) -> int:
    return len(batch["input_ids"]) if isinstance(batch, dict) else len(batch)


# ------------------------------------------------------------------------------------ methods
def plain(case: Case) -> None:
    with torch.no_grad():
        for b in case.batches:
            call(case.model, b)


def with_relu_probe(case: Case) -> Any:
    return rp.record(case.model, case.batches, progress=False, **case.record_kwargs)


def with_hooks(case: Case) -> torch.Tensor:
    """The minimal recorder: a pre-hook per ReLU module keeps ``input > 0`` of every call."""
    kept: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple) -> None:
        kept.append(args[0] > 0)

    handles = [m.register_forward_pre_hook(hook) for m in case.relus]
    rows = []
    try:
        with torch.no_grad():
            for b in case.batches:
                kept.clear()
                call(case.model, b)
                rows.append(torch.cat([g.reshape(batch_size(b), -1) for g in kept], dim=1))
    finally:
        for h in handles:
            h.remove()
    return torch.cat(rows)


def with_captum(case: Case) -> torch.Tensor:
    from captum.attr import LayerActivation

    if isinstance(case.batches[0], dict):
        def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return case.model(input_ids=input_ids, attention_mask=attention_mask).logits

        layer_act = LayerActivation(forward, case.relus)
    else:
        layer_act = LayerActivation(case.model, case.relus)
    rows = []
    for b in case.batches:
        if isinstance(b, dict):
            acts = layer_act.attribute(b["input_ids"], additional_forward_args=(b["attention_mask"],),
                                       attribute_to_layer_input=True)
        else:
            acts = layer_act.attribute(b, attribute_to_layer_input=True)
        rows.append(torch.cat([(a > 0).reshape(batch_size(b), -1) for a in acts], dim=1))
    return torch.cat(rows)


def with_torchlens(case: Case) -> torch.Tensor:
    import torchlens as tl

    rows = []
    with torch.no_grad():
        for b in case.batches:
            args, kwargs = ((), b) if isinstance(b, dict) else ((b,), None)
            rec = tl.record(case.model, list(args), input_kwargs=kwargs, save=tl.func("relu"),
                            activation_transform=lambda t: t > 0, save_raw_activations=False)
            gates = [rec.activation_by_raw_label(label).transformed_ram_payload for label in rec.by_label]
            rows.append(torch.cat([g.reshape(batch_size(b), -1) for g in gates], dim=1))
    return torch.cat(rows)


def with_nnsight(case: Case) -> torch.Tensor:
    from nnsight import NNsight

    traced = NNsight(case.model)
    envoys = [(_envoy(traced, path), k) for path, k in case.calls]
    rows = []
    with torch.no_grad():
        for b in case.batches:
            saved: list[Any] = []
            if isinstance(b, dict):
                tracer_cm = traced.trace(**b)
            else:
                tracer_cm = traced.trace(b)
            with tracer_cm as tracer:
                for envoy, k in envoys:
                    if k == 0:
                        saved.append((envoy.input > 0).save())
                    else:
                        for _ in tracer.iter[k]:
                            saved.append((envoy.input > 0).save())
            rows.append(torch.cat([s.reshape(batch_size(b), -1) for s in saved], dim=1))
    return torch.cat(rows)


def _envoy(root: Any, path: str) -> Any:
    for part in path.split("."):
        root = root[int(part)] if part.isdigit() else getattr(root, part)
    return root


PEERS: dict[str, tuple[str, Callable[[Case], Any], str | None]] = {
    "hooks": ("hand-written pre-hooks", with_hooks, None),
    "captum": ("captum LayerActivation", with_captum, "captum"),
    "torchlens": ("torchlens tl.record", with_torchlens, "torchlens"),
    "nnsight": ("nnsight trace", with_nnsight, "nnsight"),
}


def available(module: str | None) -> bool:
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------- measuring
def measure(case: Case, peers: list[str], rounds: int) -> dict[str, dict[str, float]]:
    runs: dict[str, Callable[[], Any]] = {"plain forward": lambda: plain(case),
                                          "relu_probe.record": lambda: with_relu_probe(case)}
    if case.record_kwargs:  # the peers record element gates: nothing to compare with
        case.notes.append(f"relu_probe records {case.record_kwargs}; peers not run (they keep element gates)")
        peers = []
    for key in peers:
        label, fn, module = PEERS[key]
        if available(module):
            runs[label] = (lambda f: lambda: f(case))(fn)
        else:
            case.notes.append(f"{label}: not installed (pip install 'relu_probe[bench]')")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = None
        for label, fn in list(runs.items()):  # warm-up and check; a peer that fails is reported, not timed
            try:
                out = fn()
            except Exception as exc:  # noqa: BLE001 - a benchmark reports what a peer cannot do
                case.notes.append(f"{label}: failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
                del runs[label]
                continue
            if label == "relu_probe.record":
                reference = out.gate.values if "gate" in out else None
            elif out is not None and reference is not None:
                # same gates, whatever the unit order: per-sample counts of units on
                counts = out.reshape(len(out), -1).sum(1).numpy()
                if out.shape != reference.shape or (counts != reference.sum(1)).any():
                    case.notes.append(f"{label}: records {out.shape[1]} units per sample "
                                      f"({int(counts.sum())} on), relu_probe {reference.shape[1]} "
                                      f"({int(reference.sum())} on) — not the same gates")
        times, cpu = interleaved_rounds(runs, rounds)
    base, base_cpu = times["plain forward"], cpu["plain forward"]
    return {
        key: {
            "median_s": statistics.median(v),
            "ratio": statistics.median(t / p for t, p in zip(v, base)),
            "best": min(v) / min(base),
            "cpu_ratio": statistics.median(t / p for t, p in zip(cpu[key], base_cpu)),
        }
        for key, v in times.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="smaller inputs and 3 rounds (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--models", default="mlp,resnet18,resnet18-channel,bert")
    parser.add_argument("--peers", default="hooks,captum,torchlens,nnsight")
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rounds = 3 if args.quick else args.rounds
    scale = 8 if args.quick else 1
    builders = {
        "mlp": lambda: mlp_case(4096 // scale, 256),
        "resnet18": lambda: resnet_case(512 // scale, 64, args.image_size),
        "resnet18-channel": lambda: resnet_channel_case(512 // scale, 64, args.image_size),
        "bert": lambda: bert_case(384 // scale, 32, 64),
    }
    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in PEERS] + [m for m in args.models.split(",") if m not in builders]
    if unknown:
        raise SystemExit(f"unknown model or peer name(s): {unknown}; models {list(builders)}, peers {list(PEERS)}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, relu_probe {rp.__version__}, "
          f"python {sys.version.split()[0]}, {rounds} interleaved rounds")
    results = {}
    for key in args.models.split(","):
        case = builders[key]()
        units = rp.record(case.model, case.batches[:1], progress=False, **case.record_kwargs).sizes["unit"]
        r = measure(case, peers, rounds)
        results[case.name] = r
        print(f"\n{case.name}: {case.n_samples} samples in {len(case.batches)} batches, "
              f"{len(case.calls)} ReLU calls on {len(case.relus)} modules, {units} units per sample")
        for label, v in r.items():
            print(f"  {label:<26} median {v['median_s'] * 1e3:9.1f} ms   time / plain forward {v['ratio']:6.3f} "
                  f"(best rounds {v['best']:6.3f}; CPU time {v['cpu_ratio']:6.3f})")
        for note in case.notes:
            print(f"  note: {note}")
    labels = list(dict.fromkeys(k for r in results.values() for k in r if k != "plain forward"))
    print("\nsummary: time / plain forward, median of interleaved rounds (target relu_probe <= 1.05); "
          "in brackets the same for process CPU time")
    print("| model | plain forward | " + " | ".join(labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    for name, r in results.items():
        cells = [f"{r[k]['ratio']:.3f} ({r[k]['cpu_ratio']:.3f})" if k in r else "n/a" for k in labels]
        print(f"| {name} | {r['plain forward']['median_s'] * 1e3:.0f} ms | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
