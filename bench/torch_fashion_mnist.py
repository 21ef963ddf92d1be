#!/usr/bin/python3
"""torch_fashion_mnist.py: bench/train_fashion_mnist's training run in PyTorch.

The same run as examples/fashion_mnist: an MLP 784-512-256-10 of nn.Linear
layers with ReLU between them (PyTorch's default initialisation), Adam with
its defaults, batch 128 shuffled every epoch, the learning rate following a
cosine from 1e-3 to 0 over the run (set before every step, as the example
does), zero_grad(set_to_none=True), and the test accuracy after each epoch
(batches of 1000, no_grad). Prints the lines train_fashion_mnist prints: each
epoch's training time and samples/s, by the clock and by the process's CPU
time, then the whole run.

Run with Debian's python3-torch: /usr/bin/python3 bench/torch_fashion_mnist.py
    [--data DIR] [--epochs N] [--threads N] [--mkldnn on|off] [--seed N]
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to N before torch loads
unless the caller set them.
"""
import argparse
import gzip
import math
import os
import struct
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mkldnn", choices=["on", "off"], default="off",
                   help="whether PyTorch may use oneDNN (MKL-DNN) kernels")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.epochs < 1 or args.threads < 1:
        p.error("need --epochs >= 1 and --threads >= 1")
    return args


def read_idx(path):
    """An IDX file's bytes after its header, and its shape."""
    with gzip.open(path, "rb") as f:
        blob = f.read()
    ndim = blob[3]
    shape = struct.unpack(">" + "I" * ndim, blob[4:4 + 4 * ndim])
    return blob[4 + 4 * ndim:], shape


def load(torch, directory, prefix):
    pixels, shape = read_idx(f"{directory}/{prefix}-images-idx3-ubyte.gz")
    labels, _ = read_idx(f"{directory}/{prefix}-labels-idx1-ubyte.gz")
    x = torch.frombuffer(bytearray(pixels), dtype=torch.uint8)
    x = x.reshape(shape[0], 784).float() / 255
    y = torch.frombuffer(bytearray(labels), dtype=torch.uint8).long()
    return x, y


def main():
    args = parse()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    import torch  # after the thread variables: they are read when it loads

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    torch.backends.mkldnn.enabled = args.mkldnn == "on"
    torch.manual_seed(args.seed)
    x, y = load(torch, args.data, "train")
    tx, ty = load(torch, args.data, "t10k")
    sizes = [784, 512, 256, 10]
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = 128
    per_epoch = (x.shape[0] + batch - 1) // batch
    total = args.epochs * per_epoch
    steps = 0
    run_start = time.perf_counter()
    train_s = train_cpu_s = 0.0
    for epoch in range(1, args.epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        order = torch.randperm(x.shape[0])
        loss_sum = 0.0
        for b in range(per_epoch):
            idx = order[b * batch:(b + 1) * batch]
            lr = 1e-3 * (1 + math.cos(math.pi * steps / total)) / 2
            for group in adam.param_groups:
                group["lr"] = lr
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            adam.step()
            adam.zero_grad(set_to_none=True)
            loss_sum += loss.item()
            steps += 1
        t1, c1 = time.perf_counter(), time.process_time()
        correct = 0
        with torch.no_grad():
            for lo in range(0, tx.shape[0], 1000):
                pred = model(tx[lo:lo + 1000]).argmax(1)
                correct += int((pred == ty[lo:lo + 1000]).sum())
        train_s += t1 - t0
        train_cpu_s += c1 - c0
        print(f"epoch={epoch} train_s={t1 - t0:.3f} "
              f"samples_per_s={x.shape[0] / (t1 - t0):.0f} "
              f"cpu_s={c1 - c0:.3f} "
              f"cpu_samples_per_s={x.shape[0] / (c1 - c0):.0f} "
              f"eval_s={time.perf_counter() - t1:.3f} "
              f"loss={loss_sum / per_epoch:.4f} "
              f"accuracy={100 * correct / tx.shape[0]:.2f}", flush=True)
    print(f"total_s={time.perf_counter() - run_start:.3f} "
          f"train_s={train_s:.3f} train_cpu_s={train_cpu_s:.3f} "
          f"torch={torch.__version__} "
          f"mkldnn={args.mkldnn} omp={os.environ['OMP_NUM_THREADS']} "
          f"openblas={os.environ['OPENBLAS_NUM_THREADS']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
