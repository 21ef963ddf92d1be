#!/usr/bin/python3
"""torch_check.py: checkpoints of examples/gpt's model load into nanoGPT's
in PyTorch (examples/gpt/nanogpt.py) with load_state_dict(strict=True) and
give the same loss. For f32 and f64, with and without biases, it runs
build/examples/gpt/gpt_check (which trains a small model three steps,
saves it with gpt_save and prints its loss on a fixed batch), loads the
file (config from its metadata, weights strictly), computes the loss of
the same batch in eval mode and compares (relative 1e-5 in f32, 1e-12 in
f64). Exits 1 on any difference.

Run from the repository root, after meson compile -C build:

    /usr/bin/python3 examples/gpt/torch_check.py [build-dir]
"""
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nanogpt import load_checkpoint  # noqa: E402


def batch(vocab):
    """gpt_check's batch (2, 16)."""
    ids = torch.tensor([[(7 * b + 3 * t + 1) % vocab for t in range(16)]
                        for b in range(2)])
    targets = torch.tensor([[(5 * b + 11 * t + 2) % vocab for t in range(16)]
                            for b in range(2)])
    targets[1, 15] = -1
    return ids, targets


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    program = os.path.join(build, "examples", "gpt", "gpt_check")
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        for dtype, tol in (("f32", 1e-5), ("f64", 1e-12)):
            for bias in ("bias", "nobias"):
                path = os.path.join(tmp, "%s_%s.safetensors" % (dtype, bias))
                out = subprocess.run([program, path, dtype, bias], check=True,
                                     capture_output=True, text=True).stdout
                ours = float(out.strip().split("=")[1])
                model = load_checkpoint(path).eval()
                ids, targets = batch(model.config.vocab_size)
                with torch.no_grad():
                    _, loss = model(ids, targets)
                diff = abs(loss.item() - ours) / abs(ours)
                ok = diff <= tol
                status |= not ok
                print("%s %-6s: ours %.12g, PyTorch %.12g (relative %.1e) %s"
                      % (dtype, bias, ours, loss.item(), diff,
                         "ok" if ok else "DIFFERENT"))
    return status


if __name__ == "__main__":
    sys.exit(main())
