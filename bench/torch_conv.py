#!/usr/bin/python3
"""torch_conv.py: bench/conv's layer in PyTorch eager mode: F.conv2d forward
and the backward of its sum (dx, dW and db), timed step by step; prints one
line in bench/conv's format with the medians (no floor).

Run with Debian's python3-torch, one thread, e.g.
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE \\
        /usr/bin/python3 bench/torch_conv.py --threads 1
    [--batch N] [--channels C] [--size H] [--out O] [--kernel k] [--pad p]
    [--dtype f32|f64] [--threads T] [--steps S] [--mkldnn on|off]
The thread variables default to --threads when the caller did not set
them (they are read when torch loads).
"""
import argparse
import os
import statistics
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in [("batch", 128), ("channels", 32), ("size", 14),
                          ("out", 64), ("kernel", 3), ("pad", 1),
                          ("threads", 1), ("steps", 20)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    p.add_argument("--mkldnn", choices=["on", "off"], default="on")
    a = p.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(a.threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.backends.mkldnn.enabled = a.mkldnn == "on"
    torch.manual_seed(1)
    dt = torch.float32 if a.dtype == "f32" else torch.float64
    x = torch.randn(a.batch, a.channels, a.size, a.size, dtype=dt,
                    requires_grad=True)
    w = (torch.randn(a.out, a.channels, a.kernel, a.kernel, dtype=dt) *
         0.1).requires_grad_(True)
    b = torch.zeros(a.out, dtype=dt, requires_grad=True)
    fwd, bwd = [], []
    for step in range(a.steps + 2):  # two warm-up steps
        t0 = time.perf_counter()
        y = F.conv2d(x, w, b, padding=a.pad)
        t1 = time.perf_counter()
        loss = y.sum()
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        x.grad = w.grad = b.grad = None
        if step >= 2:
            fwd.append((t1 - t0) * 1e6)
            bwd.append((t3 - t2) * 1e6)
    print("conv2d=(%d,%d,%d,%d)x(%d,%d,%d,%d) pad=%d dtype=%s threads=%d "
          "mkldnn=%s fwd_us=%.1f bwd_us=%.1f" % (
              a.batch, a.channels, a.size, a.size, a.out, a.channels,
              a.kernel, a.kernel, a.pad, a.dtype, a.threads, a.mkldnn,
              statistics.median(fwd), statistics.median(bwd)))


if __name__ == "__main__":
    main()
