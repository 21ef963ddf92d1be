#!/usr/bin/python3
"""torch_gpt.py: bench/gpt_step's measurements for nanoGPT's model
(examples/gpt/nanogpt.py) in PyTorch eager mode on the CPU, float32: the
training step (forward with targets, backward, torch.optim.AdamW with its
defaults, zero_grad(set_to_none=True)) on random tokens, and greedy
generation from a one-token prompt to the block size through the model's
forward over the growing context, as nanoGPT's generate() runs it (argmax
in place of sampling, as gpt_step does). Prints step_us (the median),
step_cpu_us (the median of the process's CPU time) and tps (tokens per
second).

Run: /usr/bin/python3 bench/torch_gpt.py [--config small|tiny]
         [--threads N] [--steps S]
(OMP_NUM_THREADS and OPENBLAS_NUM_THREADS default to --threads.)"""
import argparse
import os
import statistics
import sys
import time

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--config", choices=["small", "tiny"], default="small")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--steps", type=int, default=5)
args = p.parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, str(args.threads))

import torch  # noqa: E402 (after the thread variables)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "examples", "gpt"))
from nanogpt import GPT, GPTConfig  # noqa: E402

SIZES = {"small": dict(vocab_size=4096, block_size=256, n_layer=4, n_head=4,
                       n_embd=256),
         "tiny": dict(vocab_size=512, block_size=64, n_layer=2, n_head=4,
                      n_embd=128)}
BATCH = 8

torch.set_num_threads(args.threads)
torch.manual_seed(1)
config = GPTConfig(**SIZES[args.config], dropout=0.0, bias=True)
model = GPT(config)
opt = torch.optim.AdamW(model.parameters())
shape = (BATCH, config.block_size)
ids = torch.randint(config.vocab_size, shape)
targets = torch.randint(config.vocab_size, shape)
times, cpu = [], []
for s in range(-2, args.steps):
    t0, c0 = time.perf_counter(), time.process_time()
    _, loss = model(ids, targets)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    if s >= 0:
        times.append((time.perf_counter() - t0) * 1e6)
        cpu.append((time.process_time() - c0) * 1e6)

model.eval()
seq = torch.zeros((1, 1), dtype=torch.long)
t0 = time.perf_counter()
with torch.no_grad():
    while seq.size(1) < config.block_size:
        logits, _ = model(seq)
        seq = torch.cat((seq, logits[:, -1, :].argmax(-1, keepdim=True)), 1)
tps = (config.block_size - 1) / (time.perf_counter() - t0)
print("step_us=%.0f step_cpu_us=%.0f tps=%.0f threads=%d"
      % (statistics.median(times), statistics.median(cpu), tps, args.threads))
