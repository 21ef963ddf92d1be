#!/usr/bin/python3
"""torch_attention.py: bench/attention's measurement in PyTorch: naive
attention in torch ops, softmax(q k^T / sqrt(E) (causal: -inf above the
diagonal)) v on q, k, v of shape (batch, heads, T, E) that require
gradients; the forward and the backward of sum(O * W) timed apart, medians
over the repetitions, printed in bench/attention's format. scores_bytes is
one (T,T) score matrix of every head, which this version holds (twice:
the scores and the probabilities, kept for the backward); peak_rss_growth
is how far the process's peak resident memory rose over the timed loop.

Run with Debian's python3-torch: /usr/bin/python3 bench/torch_attention.py
    [--T 256] [--batch 1] [--heads 8] [--E 64] [--dtype f32|f64]
    [--causal 0|1] [--threads 1] [--reps 10]
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to the thread count and
OMP_WAIT_POLICY to PASSIVE before torch loads, unless the caller set them.
"""
import argparse
import math
import os
import resource
import statistics
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--T", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--E", type=int, default=64)
    p.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    p.add_argument("--causal", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=10)
    a = p.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(a.threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(a.threads)
    dt = torch.float32 if a.dtype == "f32" else torch.float64
    g = torch.Generator().manual_seed(1)
    shape = (a.batch, a.heads, a.T, a.E)
    w = torch.randn(shape, generator=g, dtype=dt)
    q, k, v = (torch.randn(shape, generator=g, dtype=dt).requires_grad_(True)
               for _ in range(3))
    hide = ~torch.ones(a.T, a.T, dtype=torch.bool).tril()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fwd, bwd = [], []
    for r in range(a.reps + 1):  # round 0 warms up
        t0 = time.perf_counter()
        s = q @ k.transpose(-1, -2) / math.sqrt(a.E)
        if a.causal:
            s = s.masked_fill(hide, -math.inf)
        o = torch.softmax(s, -1) @ v
        t1 = time.perf_counter()
        loss = (o * w).sum()
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        if r:
            fwd.append(t1 - t0)
            bwd.append(t3 - t2)
        for t in (q, k, v):
            t.grad = None
    elem = 4 if a.dtype == "f32" else 8
    rss_growth = 1024 * (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss -
                         rss_before)
    print("torch attention T=%d batch=%d heads=%d E=%d dtype=%s causal=%d "
          "threads=%d forward_ms=%.3f backward_ms=%.3f arena_bytes=- "
          "scores_bytes=%d peak_rss_growth=%d" % (
              a.T, a.batch, a.heads, a.E, a.dtype, a.causal, a.threads,
              1e3 * statistics.median(fwd), 1e3 * statistics.median(bwd),
              a.batch * a.heads * a.T * a.T * elem, rss_growth))


if __name__ == "__main__":
    main()
