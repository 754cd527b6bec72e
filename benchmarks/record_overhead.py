"""Recording overhead: ``rp.record`` time / plain forward time over the same batches.

Side by side in one run with captum's ``LayerActivation`` over the same ReLUs (reading their
inputs, thresholded at 0 and copied to CPU, as a gate recorder must) and, when installed,
torchlens (``tl.trace`` saving every ReLU output). Two models, built
inline: an MLP (4 hidden layers × 1024) and a small ResNet-style CNN. Methods are
interleaved and repeated; each figure is the median over rounds of (method time / plain
forward time in the same round); "best rounds" is the fastest method run over the fastest plain
run, the figure least disturbed by other load on a shared machine.

Run: ``python benchmarks/record_overhead.py [--repeats 7] [--quick]``. Target: <= 1.10.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import relu_probe as rp


def mlp(width: int = 1024, depth: int = 4) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + x)


class SmallResNet(nn.Module):
    def __init__(self, channels: int = 32, blocks: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU())
        self.blocks = nn.Sequential(*[Block(channels) for _ in range(blocks)])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def plain(model: nn.Module, batches: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for b in batches:
            model(b)


def with_relu_probe(model: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    rp.record(model, x, batch_size=batch_size, progress=False)


def with_captum(model: nn.Module, batches: list[torch.Tensor], relus: list[nn.Module]) -> None:
    from captum.attr import LayerActivation

    layer_act = LayerActivation(model, relus)
    gates = []
    for b in batches:
        acts = layer_act.attribute(b, attribute_to_layer_input=True)
        gates.append(torch.cat([(a > 0).reshape(len(b), -1).cpu() for a in acts], dim=1))
    torch.cat(gates)


def with_torchlens(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """torchlens (graph-level tracing) saving every ReLU output; post-ReLU > 0 is the gate."""
    import torchlens as tl
    from torchlens.options import CaptureOptions

    options = CaptureOptions(layers_to_save=["relu"])
    gates = []
    for b in batches:
        trace = tl.trace(model, b, capture=options)
        labels = [label for label in trace.layer_labels if "relu" in label]
        gates.append(torch.cat([(trace[label].tensor > 0).reshape(len(b), -1) for label in labels], dim=1))
    torch.cat(gates)


def torchlens_available() -> bool:
    try:
        import torchlens  # noqa: F401
    except ImportError:
        return False
    return True


def measure(name: str, model: nn.Module, x: torch.Tensor, batch_size: int, repeats: int) -> dict[str, float]:
    model.eval()
    batches = list(x.split(batch_size))
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    runs = {
        "plain forward": lambda: plain(model, batches),
        "relu_probe.record": lambda: with_relu_probe(model, x, batch_size),
        "captum LayerActivation": lambda: with_captum(model, batches, relus),
    }
    if torchlens_available():
        runs["torchlens trace"] = lambda: with_torchlens(model, batches)
    for fn in runs.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for key, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    # each round runs every method back to back: the median of per-round ratios is robust to
    # the slow drifts of a shared machine
    ratio = {k: statistics.median(t / p for t, p in zip(v, times["plain forward"])) for k, v in times.items()}
    best = {k: min(v) / min(times["plain forward"]) for k, v in times.items()}
    n_units = sum(1 for _ in relus)
    print(f"\n{name}: {len(x)} samples in batches of {batch_size}, {n_units} ReLU modules, "
          f"{repeats} interleaved rounds")
    for key, value in med.items():
        print(f"  {key:<24} median {value * 1e3:9.1f} ms   ratio to plain forward {ratio[key]:5.3f} "
              f"(best rounds {best[key]:5.3f})")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="smaller inputs (smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: "
                        "less sensitive to other load on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n_mlp, n_cnn = (512, 128) if args.quick else (4096, 512)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, relu_probe {rp.__version__}")
    r1 = measure("MLP 4 × 1024", mlp(), torch.randn(n_mlp, 1024), 256, args.repeats)
    r2 = measure("ResNet-style CNN (32 ch, 3 blocks, 32×32)", SmallResNet(), torch.randn(n_cnn, 3, 32, 32), 64, args.repeats)
    print("\nsummary (time / plain forward; target relu_probe <= 1.10):")
    for name, r in (("MLP", r1), ("CNN", r2)):
        peers = ", ".join(f"{k} {v:.3f}" for k, v in r.items() if k not in ("plain forward", "relu_probe.record"))
        print(f"  {name}: relu_probe {r['relu_probe.record']:.3f}; {peers}")


if __name__ == "__main__":
    main()
