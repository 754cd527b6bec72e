"""Recording inputs of unknown length costs at most about twice the gates recorded.

Measured as real resident memory: a fresh subprocess (glibc told to return every freed block
of 64 KiB or more to the OS, so freed memory does not linger) records a generator of batches
(no len) through a model whose ReLU layer is wide; the growth of its peak RSS during the
record, over the peak of the same forward passes run without recording, is compared with the
bytes of the gates recorded (one byte per unit-sample in memory).

Storage of unknown length grows geometrically (each new chunk as large as everything so far),
so its capacity is at most twice the rows recorded, and joining the chunks at the end adds at
most the first chunk before each chunk is freed: bound = 2 × gates + first batch (+ 4 MiB for
the interpreter's own allocations). Two cases: two large batches (the old sink reserved eight
first batches: 4× the gates), and 17 batches — just past a doubling, the worst case of
geometric growth.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import torch
    torch.set_num_threads(1)
    import relu_probe as rp

    units, batch, n_batches = (int(a) for a in sys.argv[1:4])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, units), torch.nn.ReLU(), torch.nn.Linear(units, 2)).eval()
    x = torch.randn(batch * n_batches, 16)

    def batches():  # a generator: no len, so the sink cannot size its storage up front
        yield from x.split(batch)

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    rp.record(model, x[:8])  # imports and first-use allocations
    with torch.no_grad():  # the forward passes' own peak, without recording
        for b in batches():
            model(b)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    ds = rp.record(model, batches())
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    assert ds.sizes["sample"] == len(x)
    print(json.dumps({"growth": after - before, "gates": int(ds.gate.nbytes),
                      "first_batch": int(ds.gate[:batch].nbytes)}))
""")


@pytest.mark.parametrize("batch,n_batches", [(4096, 2), (512, 17)])
def test_unknown_length_recording_costs_at_most_twice_the_gates(tmp_path, batch, n_batches):
    script = tmp_path / "memory.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    proc = subprocess.run([sys.executable, str(script), "8192", str(batch), str(n_batches)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    bound = 2 * m["gates"] + m["first_batch"] + 4 * 2**20
    assert m["growth"] <= bound, (
        f"peak RSS grew {m['growth'] / 2**20:.0f} MiB recording {m['gates'] / 2**20:.0f} MiB of gates "
        f"({m['growth'] / m['gates']:.2f}×; bound {bound / 2**20:.0f} MiB)")
