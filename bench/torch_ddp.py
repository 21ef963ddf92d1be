#!/usr/bin/python3
"""torch_ddp.py: bench/dist_step's training step in PyTorch, data parallel.

The Fashion-MNIST MLP (784-512-256-10, ReLU), cross-entropy, Adam, f32, a
global batch of 128 random images split over the ranks, under
torch.nn.parallel.DistributedDataParallel with the gloo backend (its
default 25 MB buckets), each rank one thread; with --ranks 1, the same step
on one process without DDP. Prints one line in dist_step's format with the
median step (rank 0's).

Run with Debian's python3-torch:
    /usr/bin/python3 bench/torch_ddp.py [--ranks N] [--steps S] [--threads T]
"""
import argparse
import os
import statistics
import sys
import time

BATCH = 128


def run(rank, world, steps, threads, port, out):
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.ReLU(),
        torch.nn.Linear(512, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10))
    if world > 1:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        dist.init_process_group("gloo", rank=rank, world_size=world)
        model = torch.nn.parallel.DistributedDataParallel(model)
    adam = torch.optim.Adam(model.parameters())
    local = BATCH * (rank + 1) // world - BATCH * rank // world
    x = torch.rand(local, 784)
    y = torch.randint(0, 10, (local,))
    times = []
    for s in range(steps + 5):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        adam.step()
        adam.zero_grad(set_to_none=True)
        if s >= 5:
            times.append(time.perf_counter() - t0)
    step_us = statistics.median(times) * 1e6
    if rank == 0:
        out.put(f"torch ranks={world} threads={threads} batch={BATCH} "
                f"step_us={step_us:.0f} samples_per_s={BATCH / step_us * 1e6:.0f}")
    if world > 1:
        dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--port", type=int, default=29517)
    a = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    import torch.multiprocessing as mp

    out = mp.get_context("spawn").SimpleQueue()
    if a.ranks == 1:
        run(0, 1, a.steps, a.threads, a.port, out)
    else:
        mp.spawn(run, args=(a.ranks, a.steps, a.threads, a.port, out),
                 nprocs=a.ranks, join=True)
    print(out.get())
    return 0


if __name__ == "__main__":
    sys.exit(main())
