#!/usr/bin/python3
"""torch_cnn_eval.py: loads a checkpoint written by examples/fashion_mnist_cnn
into the equivalent torch.nn.Sequential with load_state_dict(strict=True)
(ag_module_state's names are the Sequential's state_dict names: "0.weight",
"0.bias", "3.weight", ...) and measures its test accuracy, which is the one
fashion_mnist_cnn --eval prints.

Run: /usr/bin/python3 examples/torch_cnn_eval.py CHECKPOINT [DATA_DIR]
(Debian's python3-torch; the file is read by torch_eval.py's reader, without
the safetensors package.)"""
import sys

import numpy as np
import torch

from torch_eval import read_idx, read_safetensors


def make_model():
    """The model of fashion_mnist_cnn.c, layer for layer."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        nn.Linear(128, 10))


def main():
    path = sys.argv[1]
    folder = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    tensors, metadata = read_safetensors(path)
    model = make_model()
    model.load_state_dict(tensors, strict=True)
    model.eval()
    images = read_idx(folder + "/t10k-images-idx3-ubyte.gz")
    labels = read_idx(folder + "/t10k-labels-idx1-ubyte.gz")
    x = torch.from_numpy(images.reshape(-1, 1, 28, 28).astype(np.float32) / 255)
    with torch.no_grad():
        predicted = torch.cat([model(b).argmax(dim=1) for b in x.split(1000)])
    accuracy = 100.0 * float((predicted.numpy() == labels).mean())
    print(f"torch_cnn_eval: {path}: test accuracy {accuracy:.2f}% "
          f"(the checkpoint says {metadata.get('test_accuracy', '?')}%)")


if __name__ == "__main__":
    main()
