"""torch_args.py: the options bench/torch_mlp.py and bench/torch_hvp.py share.

parse(description, steps, mkldnn, extra) reads --batch, --sizes, --dtype,
--threads, --steps and --mkldnn (plus what `extra`, a function of the
argparse parser, adds), checks the sizes and batch, and sets
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS to the thread count unless the
caller set them; import torch only after it.
"""
import argparse
import os


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
