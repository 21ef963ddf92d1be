#!/usr/bin/python3
"""torch_layer_norm.py: bench/layer_norm's measurement in PyTorch:
torch.nn.functional.layer_norm over the last axis of x (rows, cols) with
weight and bias, all requiring gradients; the forward and the backward of
sum(Y * W) timed apart (wall clock and the process's CPU time, all threads),
medians over the repetitions, printed in bench/layer_norm's format.

Run with Debian's python3-torch: /usr/bin/python3 bench/torch_layer_norm.py
    [--rows 8192] [--cols 768] [--dtype f32|f64] [--threads 1] [--reps 20]
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to the thread count and
OMP_WAIT_POLICY to PASSIVE before torch loads, unless the caller set them.
"""
import argparse
import os
import statistics
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=8192)
    p.add_argument("--cols", type=int, default=768)
    p.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=20)
    a = p.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(a.threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(a.threads)
    dt = torch.float32 if a.dtype == "f32" else torch.float64
    g = torch.Generator().manual_seed(1)
    x = torch.randn(a.rows, a.cols, generator=g, dtype=dt)
    w = torch.randn(a.rows, a.cols, generator=g, dtype=dt)
    gamma = 1 + 0.1 * torch.randn(a.cols, generator=g, dtype=dt)
    beta = 0.1 * torch.randn(a.cols, generator=g, dtype=dt)
    leaves = [t.requires_grad_(True) for t in (x, gamma, beta)]
    fwd, bwd, fwd_cpu, bwd_cpu = [], [], [], []
    for r in range(a.reps + 1):  # round 0 warms up
        c0, t0 = time.process_time(), time.perf_counter()
        y = torch.nn.functional.layer_norm(x, (a.cols,), gamma, beta, 1e-5)
        t1, c1 = time.perf_counter(), time.process_time()
        loss = (y * w).sum()
        c2, t2 = time.process_time(), time.perf_counter()
        loss.backward()
        t3, c3 = time.perf_counter(), time.process_time()
        if r:
            fwd.append(t1 - t0)
            bwd.append(t3 - t2)
            fwd_cpu.append(c1 - c0)
            bwd_cpu.append(c3 - c2)
        for t in leaves:
            t.grad = None
    print("torch layer_norm rows=%d cols=%d dtype=%s threads=%d "
          "forward_us=%.1f backward_us=%.1f forward_cpu_us=%.1f "
          "backward_cpu_us=%.1f allocs_per_step=-" % (
              a.rows, a.cols, a.dtype, a.threads,
              1e6 * statistics.median(fwd), 1e6 * statistics.median(bwd),
              1e6 * statistics.median(fwd_cpu),
              1e6 * statistics.median(bwd_cpu)))


if __name__ == "__main__":
    main()
