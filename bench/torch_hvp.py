#!/usr/bin/python3
"""torch_hvp.py: bench/hvp's four measurements in PyTorch eager mode.

The same MLP (weights (out, in) and biases as nn.Linear makes them, the
activation between layers, softmax cross-entropy of the logits), and, step
by step interleaved, the median time of:
  hvp:  double backward: g = torch.autograd.grad(loss, params,
        create_graph=True), then torch.autograd.grad(sum((g * v).sum()),
        params);
  grad: the first-order forward and backward, torch.autograd.grad(loss,
        params);
  jvp:  forward AD (torch.autograd.forward_ad): every parameter a dual
        tensor with tangent v, one forward pass, under no_grad;
  fwd:  the plain forward pass under no_grad.
Prints one line in bench/hvp's format.

Run with Debian's python3-torch: /usr/bin/python3 bench/torch_hvp.py
    [--batch B] [--sizes 784,1024,1024,10] [--dtype f32|f64]
    [--act tanh|relu|gelu] [--threads N] [--steps S] [--mkldnn on|off]
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to N, and OMP_WAIT_POLICY
to PASSIVE, before torch loads unless the caller set them.
"""
import os
import statistics
import sys
import time

import torch_args


def act_arg(p):
    p.add_argument("--act", choices=["tanh", "relu", "gelu"], default="tanh")


def main():
    args = torch_args.parse(__doc__.split("\n")[0], 20, "off", act_arg)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch  # after the thread variables: they are read when it loads
    import torch.autograd.forward_ad as fwad
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = args.mkldnn == "on"
    torch.manual_seed(1)
    dtype = torch.float32 if args.dtype == "f32" else torch.float64
    act = {"tanh": torch.tanh, "relu": torch.relu, "gelu": F.gelu}[args.act]
    params = []
    for i in range(len(args.sizes) - 1):
        layer = torch.nn.Linear(args.sizes[i], args.sizes[i + 1]).to(dtype)
        params += [layer.weight.detach().requires_grad_(),
                   layer.bias.detach().requires_grad_()]
    v = [torch.randn_like(p) for p in params]
    x = torch.rand(args.batch, args.sizes[0], dtype=dtype) * 2 - 1
    y = torch.randint(0, args.sizes[-1], (args.batch,))

    def loss_of(p):
        h = x
        for i in range(0, len(p), 2):
            h = F.linear(h, p[i], p[i + 1])
            if i + 2 < len(p):
                h = act(h)
        return F.cross_entropy(h, y)

    def hvp():
        g = torch.autograd.grad(loss_of(params), params, create_graph=True)
        dot = sum((gi * vi).sum() for gi, vi in zip(g, v))
        return torch.autograd.grad(dot, params)

    def grad():
        return torch.autograd.grad(loss_of(params), params)

    def jvp():
        with torch.no_grad(), fwad.dual_level():
            duals = [fwad.make_dual(p.detach(), t) for p, t in zip(params, v)]
            return fwad.unpack_dual(loss_of(duals)).tangent

    def fwd():
        with torch.no_grad():
            return loss_of(params)

    kinds = [("hvp", hvp), ("grad", grad), ("jvp", jvp), ("fwd", fwd)]
    for _ in range(2):  # warm up the allocator and BLAS
        for _, f in kinds:
            f()
    times = {name: [] for name, _ in kinds}
    for _ in range(args.steps):
        for name, f in kinds:
            t0 = time.perf_counter()
            f()
            times[name].append((time.perf_counter() - t0) * 1e6)
    us = {name: statistics.median(t) for name, t in times.items()}
    vhv = sum((h * vi).sum() for h, vi in zip(hvp(), v)).item()
    tangent = jvp().item()
    print(
        f"batch={args.batch} layers={len(args.sizes) - 1} dtype={args.dtype} "
        f"act={args.act} threads={args.threads} steps={args.steps} "
        f"hvp_us={us['hvp']:.1f} grad_us={us['grad']:.1f} "
        f"jvp_us={us['jvp']:.1f} fwd_us={us['fwd']:.1f} "
        f"hvp_grad={us['hvp'] / us['grad']:.3f} "
        f"jvp_fwd={us['jvp'] / us['fwd']:.3f} vhv={vhv:.6g} "
        f"tangent={tangent:.6g} torch={torch.__version__} "
        f"mkldnn={args.mkldnn} omp={os.environ['OMP_NUM_THREADS']} "
        f"openblas={os.environ['OPENBLAS_NUM_THREADS']} "
        f"wait={os.environ['OMP_WAIT_POLICY']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
