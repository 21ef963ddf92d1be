#!/usr/bin/python3
"""torch_cnn.py: the training step of bench/cnn_step in PyTorch eager mode.

fashion_mnist_cnn's model (make_model of examples/torch_cnn_eval.py) on a
(B, 1, 28, 28) batch of uniform pixels with random labels: forward,
cross-entropy, backward, an Adam step (lr 1e-3) and
zero_grad(set_to_none=True), timed over the steps; prints one line in
cnn_step's format with the median.

Run with Debian's python3-torch: /usr/bin/python3 bench/torch_cnn.py
    [--batch B (128)] [--threads N] [--steps S] [--mkldnn on|off]
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to N before torch loads
unless the caller set them.
"""
import os
import sys

import torch_args


def main():
    args = torch_args.parse(__doc__.split("\n")[0], 20, "on",
                            lambda p: p.set_defaults(batch=128))
    import torch  # after the thread variables: they are read when it loads
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "..", "examples"))
    from torch_cnn_eval import make_model

    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = args.mkldnn == "on"
    torch.manual_seed(1)
    model = make_model()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))

    step_us = torch_args.training_step_us(model, adam, x, y, args.steps)
    print(f"batch={args.batch} threads={args.threads} steps={args.steps} "
          + torch_args.timing_fields(args, step_us))
    return 0


if __name__ == "__main__":
    sys.exit(main())
