#!/usr/bin/python3
"""torch_eval.py: loads a checkpoint written by examples/fashion_mnist into a
PyTorch model of the same shape and measures its test accuracy, showing
that weights move between libautograd and PyTorch through safetensors.

Run: /usr/bin/python3 examples/torch_eval.py CHECKPOINT [DATA_DIR]
(Debian's python3-torch; the safetensors package is not needed: the format
is read here with struct and json.)"""
import gzip
import json
import struct
import sys

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        values = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]])
        tensors[name] = torch.from_numpy(values.reshape(info["shape"]).copy())
    return tensors, header.get("__metadata__", {})


def read_idx(path):
    with gzip.open(path, "rb") as f:
        blob = f.read()
    ndim = blob[3]
    shape = struct.unpack(">" + "I" * ndim, blob[4 : 4 + 4 * ndim])
    return np.frombuffer(blob[4 + 4 * ndim :], dtype=np.uint8).reshape(shape)


class MLP(torch.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])
        )

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def main():
    path = sys.argv[1]
    folder = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    tensors, metadata = read_safetensors(path)
    model = MLP([784, 512, 256, 10])
    model.load_state_dict(tensors)  # strict: names and shapes must match
    images = read_idx(folder + "/t10k-images-idx3-ubyte.gz")
    labels = read_idx(folder + "/t10k-labels-idx1-ubyte.gz")
    x = torch.from_numpy(images.reshape(-1, 784).astype(np.float32) / 255)
    with torch.no_grad():
        predicted = model(x).argmax(dim=1).numpy()
    accuracy = 100.0 * float((predicted == labels).mean())
    print(f"torch_eval: {path}: test accuracy {accuracy:.2f}% "
          f"(the checkpoint says {metadata.get('test_accuracy', '?')}%)")


if __name__ == "__main__":
    main()
