#!/usr/bin/python3
"""torch_mlp.py: the training step of bench/mlp_step in PyTorch eager mode.

An MLP of nn.Linear layers with ReLU between them, cross-entropy loss,
backward, an SGD update (lr 0.01) and zero_grad(set_to_none=True), timed over
the steps; prints one line in mlp_step's format with the median.

Run with Debian's python3-torch: /usr/bin/python3 bench/torch_mlp.py
    [--batch B] [--sizes 784,1024,1024,10] [--dtype f32|f64] [--threads N]
    [--steps S] [--mkldnn on|off]
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to N before torch loads
unless the caller set them (bench/run tries several settings and keeps
PyTorch's best).
"""
import sys

import torch_args


def main():
    args = torch_args.parse(__doc__.split("\n")[0], 50, "on")
    import torch  # after the thread variables: they are read when it loads

    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = args.mkldnn == "on"
    torch.manual_seed(1)
    dtype = torch.float32 if args.dtype == "f32" else torch.float64
    layers = []
    for i in range(len(args.sizes) - 1):
        layers.append(torch.nn.Linear(args.sizes[i], args.sizes[i + 1]))
        if i + 2 < len(args.sizes):
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(dtype)
    sgd = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(args.batch, args.sizes[0], dtype=dtype) * 2 - 1
    y = torch.randint(0, args.sizes[-1], (args.batch,))

    step_us = torch_args.training_step_us(model, sgd, x, y, args.steps)
    print(f"batch={args.batch} layers={len(args.sizes) - 1} dtype={args.dtype} "
          f"threads={args.threads} steps={args.steps} "
          + torch_args.timing_fields(args, step_us))
    return 0


if __name__ == "__main__":
    sys.exit(main())
