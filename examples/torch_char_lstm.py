#!/usr/bin/python3
"""torch_char_lstm.py: loads a checkpoint written by examples/char_lstm into
the same model built of torch.nn (Embedding -> LSTM -> Linear, with
load_state_dict(strict=True)) and measures its bits per character on the
same held-out text the same way (the last 2% of every file, 32 streams read
side by side in stretches of the checkpoint's seq, the state carried over),
printing the number as char_lstm --eval does.

Run: /usr/bin/python3 examples/torch_char_lstm.py CHECKPOINT [FILE|DIR]
(Debian's python3-torch; the text defaults to the checkpoint's "data".)"""
import math
import os
import sys

import torch
import torch.nn.functional as F

from torch_eval import read_safetensors


class CharLSTM(torch.nn.Module):
    def __init__(self, vocab, embed, hidden, layers):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, embed)
        self.lstm = torch.nn.LSTM(embed, hidden, num_layers=layers,
                                  batch_first=True)
        self.head = torch.nn.Linear(hidden, vocab)


def is_text(folder, name):
    """As char_lstm's: not hidden, no .dat index or .u8 link, a file."""
    return not (name.startswith(".") or name.endswith(".dat") or
                name.endswith(".u8")) and \
        os.path.isfile(os.path.join(folder, name))


def load_heldout(path, percent):
    """The last `percent` of every file, as char_lstm holds them out."""
    paths = [path] if not os.path.isdir(path) else [
        os.path.join(path, n) for n in sorted(os.listdir(path))
        if is_text(path, n)]
    held = b""
    for p in paths:
        with open(p, "rb") as f:
            blob = f.read()
        held += blob[len(blob) - len(blob) * percent // 100:]
    return held


def heldout_bits(model, held, streams, seq):
    length = (len(held) - 1) // streams
    data = torch.tensor(list(held), dtype=torch.int64)
    rows = torch.stack([data[s * length:s * length + length + 1]
                        for s in range(streams)])
    state, nats = None, 0.0
    with torch.no_grad():
        for at in range(0, length, seq):
            n = min(seq, length - at)
            x, y = rows[:, at:at + n], rows[:, at + 1:at + n + 1]
            out, state = model.lstm(model.embed(x), state)
            logits = model.head(out).reshape(-1, model.head.out_features)
            nats += F.cross_entropy(logits, y.reshape(-1)).item() * n
    return nats / length / math.log(2)


def main():
    path = sys.argv[1]
    tensors, meta = read_safetensors(path)
    model = CharLSTM(int(meta["vocab"]), int(meta["embed"]),
                     int(meta["hidden"]), int(meta["layers"]))
    model.load_state_dict(tensors, strict=True)
    data = sys.argv[2] if len(sys.argv) > 2 else meta["data"]
    held = load_heldout(data, int(meta["heldout_percent"]))
    bits = heldout_bits(model, held, int(meta["eval_streams"]),
                        int(meta["seq"]))
    print("torch_char_lstm: %s: held-out %.4f bits/char" % (path, bits))


if __name__ == "__main__":
    main()
