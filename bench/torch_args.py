"""torch_args.py: the options bench/torch_mlp.py and bench/torch_hvp.py share.

parse(description, steps, mkldnn, extra) reads --batch, --sizes, --dtype,
--threads, --steps and --mkldnn (plus what `extra`, a function of the
argparse parser, adds), checks the sizes and batch, and sets
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS to the thread count unless the
caller set them; import torch only after it. training_step_us() times a
training step, and timing_fields() words its result, the way the PyTorch
benchmarks of a training step do.
"""
import argparse
import os
import statistics
import time


def parse(description, steps, mkldnn, extra=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--sizes", default="784,1024,1024,10")
    p.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--mkldnn", choices=["on", "off"], default=mkldnn,
                   help="whether PyTorch may use oneDNN (MKL-DNN) kernels")
    if extra:
        extra(p)
    args = p.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if len(args.sizes) < 2 or min(args.sizes) < 1 or args.batch < 1:
        p.error("need at least two sizes >= 1 and a batch >= 1")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    return args


def training_step_us(model, optimizer, x, y, steps):
    """The median time in microseconds of a training step (forward,
    cross-entropy against labels y, backward, optimizer step,
    zero_grad(set_to_none=True)), after three steps that warm up the
    allocator and the kernels."""
    import torch

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


def timing_fields(args, step_us):
    """The end of a benchmark's line: the step's time, samples per second,
    PyTorch's version and the thread and oneDNN settings."""
    import torch
    return (f"step_us={step_us:.1f} "
            f"samples_per_s={args.batch * 1e6 / step_us:.0f} "
            f"torch={torch.__version__} mkldnn={args.mkldnn} "
            f"omp={os.environ['OMP_NUM_THREADS']} "
            f"openblas={os.environ['OPENBLAS_NUM_THREADS']}")
