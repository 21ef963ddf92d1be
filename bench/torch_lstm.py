#!/usr/bin/python3
"""torch_lstm.py: bench/lstm_step's training step in PyTorch eager mode on
the CPU: Embedding(96, 64) -> nn.LSTM(64, 256, 2 layers, batch_first) ->
Linear(256, 96), mean cross-entropy, backward, Adam, on 32 sequences of
64 symbols; prints the median step time.

Run: /usr/bin/python3 bench/torch_lstm.py [--threads N] [--steps S]
         [--mkldnn on|off] [--batch N] [--seq T] [--hidden H] [--layers L]
(OMP_NUM_THREADS and OPENBLAS_NUM_THREADS default to --threads.)"""
import argparse
import os
import statistics
import time

p = argparse.ArgumentParser(description=__doc__)
for name, default in (("batch", 32), ("seq", 64), ("hidden", 256),
                      ("layers", 2), ("threads", 1), ("steps", 10)):
    p.add_argument("--" + name, type=int, default=default)
p.add_argument("--mkldnn", choices=["on", "off"], default="on")
args = p.parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, str(args.threads))

import torch  # noqa: E402 (after the thread variables)

torch.set_num_threads(args.threads)
torch.backends.mkldnn.enabled = args.mkldnn == "on"
torch.manual_seed(1)
SYMBOLS, EMBED = 96, 64
model = torch.nn.ModuleDict(dict(
    embed=torch.nn.Embedding(SYMBOLS, EMBED),
    lstm=torch.nn.LSTM(EMBED, args.hidden, num_layers=args.layers,
                       batch_first=True),
    head=torch.nn.Linear(args.hidden, SYMBOLS)))
opt = torch.optim.Adam(model.parameters())
ids = torch.randint(SYMBOLS, (args.batch, args.seq))
nxt = torch.randint(SYMBOLS, (args.batch * args.seq,))
times = []
for s in range(-3, args.steps):
    t0 = time.perf_counter()
    y, _ = model["lstm"](model["embed"](ids))
    logits = model["head"](y).reshape(-1, SYMBOLS)
    loss = torch.nn.functional.cross_entropy(logits, nxt)
    loss.backward()
    opt.step()
    opt.zero_grad()
    if s >= 0:
        times.append((time.perf_counter() - t0) * 1e6)
print("step_us=%.0f omp=%s openblas=%s mkldnn=%s" % (
    statistics.median(times), os.environ["OMP_NUM_THREADS"],
    os.environ["OPENBLAS_NUM_THREADS"], args.mkldnn))
