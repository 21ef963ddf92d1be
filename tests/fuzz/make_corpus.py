#!/usr/bin/python3
"""Writes the seed corpora of the libFuzzer harnesses under
tests/fuzz/corpus/<harness>/: a few small valid and near-valid inputs each.

Run from anywhere with the standard library only:

    /usr/bin/python3 tests/fuzz/make_corpus.py

It rewrites the generated seeds (the same bytes every time) and leaves other
files there alone: inputs that once crashed a harness are committed as
corpus/<harness>/crash-<what> and kept as they are.

Formats, as the harnesses read them:
  fuzz_safetensors  the file itself (parameter set: see PARAMS).
  fuzz_idx          one option byte (bits 0-1 dtype f32/f64/i32/unknown,
                    bits 2-3 storage plain/gzip/two members/cut, bits 4-7
                    level or cut length), then the IDX file.
  fuzz_csv          one option byte (bit 0 header, bits 1-2 dtype), then
                    the CSV text.
  fuzz_bpe          two bytes (little-endian) giving the length of
                    vocab.json, vocab.json, then merges.txt.
  fuzz_ops          a program for the interpreter of fuzz_ops.c; the
                    assembler below follows its opcodes and operands.
"""

import gzip
import json
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
FIXTURE = os.path.join(HERE, "..", "fixtures", "arange.safetensors")


def write(harness, name, data):
    folder = os.path.join(CORPUS, harness)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------

# Keep in step with specs[] in fuzz_safetensors.c (and the fixture).
PARAMS = [("layer.weight", "F32", [2, 3]), ("layer.bias", "F32", [3]),
          ("scale", "F64", []), ("table", "F64", [2, 2]),
          ("empty", "F32", [0, 2])]
SIZES = {"F32": 4, "F64": 8, "I32": 4, "F16": 2, "BF16": 2}


def values(dtype, shape, start):
    n = math.prod(shape)
    if dtype == "F64":
        return struct.pack("<%dd" % n, *[start + i / 4 for i in range(n)])
    return struct.pack("<%df" % n, *[start + i / 4 for i in range(n)])


def safetensors(entries, metadata=None, pad=True, indent=None,
                header_len=None, extra=b""):
    """entries: (name, dtype, shape, data bytes) in data order."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in entries:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=None if indent else (",", ":"),
                      indent=indent).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    n = len(text) if header_len is None else header_len
    return struct.pack("<Q", n) + text + data + extra


def good_entries():
    return [(n, d, s, values(d, s, i)) for i, (n, d, s) in enumerate(PARAMS)]


def raw_header(text, data=b""):
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    out = {}
    good = good_entries()
    out["valid"] = safetensors(good, {"format": "pt", "epoch": "3"})
    out["valid_no_metadata"] = safetensors(good)
    out["valid_reversed"] = safetensors(good[::-1], {})
    out["valid_pretty_unpadded"] = safetensors(good, {"k": "v"}, pad=False,
                                               indent=1)
    with open(FIXTURE, "rb") as f:
        out["torch_fixture"] = f.read()

    def swap(i, **kw):
        e = list(good)
        name, dtype, shape, raw = e[i]
        e[i] = (kw.get("name", name), kw.get("dtype", dtype),
                kw.get("shape", shape), kw.get("raw", raw))
        return e

    out["f16"] = safetensors(swap(1, dtype="F16", raw=b"\0" * 6))
    out["i32_for_f32"] = safetensors(swap(1, dtype="I32"))
    out["f64_for_f32"] = safetensors(swap(1, dtype="F64", raw=b"\0" * 24))
    out["shape_3x2"] = safetensors(swap(0, shape=[3, 2]))
    out["scalar_as_1"] = safetensors(swap(2, shape=[1]))
    out["missing"] = safetensors(good[1:])
    out["unexpected"] = safetensors(good + [("extra", "F32", [1],
                                             b"\0" * 4)])
    out["renamed"] = safetensors(swap(3, name="tablE"))
    out["trailing"] = safetensors(good, extra=b"\0" * 8)
    out["truncated"] = safetensors(good)[:-5]
    out["header_too_long"] = safetensors(good, header_len=100000)
    hdr = (b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
           b'"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}')
    out["overlap"] = raw_header(hdr, b"\0" * 6)
    hdr = (b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
           b'"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}')
    out["gap"] = raw_header(hdr, b"\0" * 12)
    out["bad_json"] = raw_header(b'{"scale":{"dtype":"F64",', b"")
    out["not_object"] = raw_header(b'[1,2,3]   ')
    out["metadata_int"] = raw_header(b'{"__metadata__":{"a":1}}')
    out["duplicate_key"] = raw_header(
        b'{"__metadata__":{},"__metadata__":{}}')
    out["unknown_field"] = raw_header(
        b'{"x":{"dtype":"F32","shape":[],"data_offsets":[0,4],"y":0}}',
        b"\0" * 4)
    out["negative_offset"] = raw_header(
        b'{"x":{"dtype":"F32","shape":[],"data_offsets":[-4,0]}}')
    out["nine_dims"] = raw_header(
        b'{"x":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],'
        b'"data_offsets":[0,4]}}', b"\0" * 4)
    out["huge_shape"] = raw_header(
        b'{"x":{"dtype":"F64","shape":[4294967296,4294967296],'
        b'"data_offsets":[0,0]}}')
    # A valid file whose name "layer.bias" is written with an escape.
    valid = out["valid_no_metadata"]
    n = struct.unpack("<Q", valid[:8])[0]
    text = valid[8:8 + n].replace(b'"layer.bias"', b'"layer\\u002ebias"')
    out["escaped_name"] = raw_header(text, valid[8 + n:])
    out["short"] = b"\x08\0\0\0\0\0\0"
    out["empty_header"] = raw_header(b"{}")
    for name, data in out.items():
        write("fuzz_safetensors", name, data)


# ---------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------

F32, F64, I32, BAD = 0, 1, 2, 3
PLAIN, GZIP, TWO, CUT = 0, 4, 8, 12


def idx(code, shape, vals):
    fmt = {0x08: "B", 0x09: "b", 0x0B: "h", 0x0C: "i", 0x0D: "f",
           0x0E: "d"}[code]
    head = bytes([0, 0, code, len(shape)]) + b"".join(
        struct.pack(">I", s) for s in shape)
    return head + struct.pack(">%d%s" % (len(vals), fmt), *vals)


def idx_seeds():
    images = idx(0x08, [2, 2, 3], list(range(0, 240, 20)))
    labels = idx(0x08, [5], [0, 9, 3, 255, 1])
    seeds = {
        "u8_images_f32": (F32 | PLAIN, images),
        "u8_labels_i32": (I32 | PLAIN, labels),
        "u8_images_gzip_f64": (F64 | GZIP | 0x60, images),
        "u8_labels_gzip_stored_i32": (I32 | GZIP, labels),
        "u8_labels_two_members": (I32 | TWO | 0x10, labels),
        "u8_images_cut": (F32 | CUT | 0x30, images),
        "i8_f32": (F32 | PLAIN, idx(0x09, [4], [-128, -1, 0, 127])),
        "i16_i32_gzip": (I32 | GZIP | 0x90, idx(0x0B, [2, 2],
                                               [-32768, 1, 2, 32767])),
        "i32_f32": (F32 | PLAIN, idx(0x0C, [3], [-2**31, 16777217,
                                                 2**31 - 1])),
        "f32_f64": (F64 | PLAIN, idx(0x0D, [2, 2], [0.5, -0.0, math.inf,
                                                    math.nan])),
        "f64_f32": (F32 | PLAIN, idx(0x0E, [3], [3.4028235e38, 1e-50,
                                                 -2.5])),
        "f64_f32_overflow": (F32 | TWO, idx(0x0E, [2], [1.0, 3.5e38])),
        "f32_as_i32": (I32 | PLAIN, idx(0x0D, [1], [1.0])),
        "unknown_dtype": (BAD | PLAIN, labels),
        "eight_dims": (F64 | GZIP | 0x10, idx(0x08, [1] * 7 + [2], [1, 2])),
        "bad_magic": (F32, b"\x01" + labels[1:]),
        "unknown_type": (F32, labels[:2] + b"\x0a" + labels[3:]),
        "zero_dims": (F32, b"\0\0\x08\0"),
        "nine_dims": (F32, b"\0\0\x08\x09" + b"\0\0\0\1" * 9 + b"\0"),
        "zero_size": (F32, idx(0x08, [0], [])),
        "truncated_data": (F32 | GZIP, images[:-1]),
        "truncated_header": (F32, images[:9]),
        "trailing_byte": (I32, labels + b"\0"),
        "huge_size": (F32, b"\0\0\x0e\x02\xff\xff\xff\xff\xff\xff\xff\xff"),
        "raw_gzip": (I32, gzip.compress(labels, mtime=0)),
        "raw_gzip_garbage": (I32, gzip.compress(labels, mtime=0) + b"xyz"),
        "raw_gzip_bad_crc": (I32, gzip.compress(labels, mtime=0)[:-8] +
                             b"\0" * 8),
        # One element past the reader's 8192-element chunk.
        "u8_chunk_boundary": (F32 | GZIP | 0x90,
                              idx(0x08, [8193], [i % 256
                                                 for i in range(8193)])),
    }
    for name, (sel, payload) in seeds.items():
        write("fuzz_idx", name, bytes([sel]) + payload)


# ---------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------

HEADER = 1
CF32, CF64, CI32, CBAD = 0, 2, 4, 6


def csv_seeds():
    seeds = {
        "plain_f32": (CF32, b"1,2,3\n4,5,6\n"),
        "header_f64": (CF64 | HEADER, b"a,b\n0.5,-2.5e3\n1e-3,7\n"),
        "crlf_i32": (CI32, b"1,2\r\n-3,4\r\n"),
        "blank_lines_bom": (CF64 | HEADER,
                            b"\xef\xbb\xbfx,y\n\n  \n1, 2\n\t3 ,4\t\n"),
        "special_values": (CF64, b"inf,-inf,nan\n0x1p-3,1E5,-0\n"),
        "no_final_newline": (CF32, b"1\n2\n3"),
        "one_field": (CI32 | HEADER, b"label\n7\n"),
        "f32_limit": (CF32, b"3.4028235e38,-3.4028235e38\n"),
        "f32_overflow": (CF32, b"3.5e38\n"),
        "f64_overflow": (CF64, b"1e400\n"),
        "i32_limits": (CI32, b"2147483647,-2147483648\n"),
        "i32_overflow": (CI32, b"2147483648\n"),
        "i32_fraction": (CI32, b"1.5\n"),
        "ragged": (CF32, b"1,2\n3\n"),
        "empty_field": (CF32, b"1,,2\n"),
        "trailing_comma": (CF32, b"1,2,\n"),
        "not_a_number": (CF64, b"1,abc\n"),
        "quoted": (CF64, b'"1","2"\n'),
        "nul_byte": (CF32, b"1\x002\n"),
        "lone_cr": (CF32, b"1\r2\n"),
        "header_only": (CF32 | HEADER, b"a,b,c\n"),
        "empty": (CF32, b""),
        "bad_dtype": (CBAD, b"1\n"),
        "long_line": (CF64, b",".join(b"%d" % i for i in range(300)) +
                      b"\n"),
    }
    for name, (sel, text) in seeds.items():
        write("fuzz_csv", name, bytes([sel]) + text)


# ---------------------------------------------------------------------
# Op programs
# ---------------------------------------------------------------------

# Opcodes, in the order of instructions[] in fuzz_ops.c.
OPS = ["new", "new_bad", "binary", "unary", "scalar", "matmul", "reduce",
       "reshape", "transpose", "softmax", "xent", "mse", "dropout", "linear",
       "argmax", "detach", "requires_grad", "backward", "zero_grad", "grad",
       "mode", "reset", "inspect", "gradcheck", "copy", "chain", "expand",
       "cast", "gradients", "dual", "tangent", "conv", "pool", "norm",
       "loss", "attention"]
OP = {name: i for i, name in enumerate(OPS)}
# Indexes into the tables of fuzz_ops.c.
DT = {"f32": 0, "f64": 1, "i32": 3, "bad": 7}
AXIS = {0: 0, 1: 1, 2: 2, 3: 3, -1: 4, -2: 5, -3: 6, 4: 7, 5: 8, -5: 9,
        -9: 10, "all": 11, 8: 12, "int_max": 13, "int_min": 14, -8: 15}
SCALAR = {0: 0, 1: 1, -1: 2, 0.5: 3, 2: 4, 3: 5, -0.5: 6, 0.99: 7,
          1e300: 8, -3: 9, "inf": 10, "nan": 11, 1e-9: 12, 0.1: 13,
          1.5: 14, -1e300: 15}
SIZE = {-1: 0, 0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 6: 6, 8: 7, 12: 8, 16: 9,
        -2: 10, 5: 11, 24: 12, "2^31": 13, "2^62": 14, "max": 15}
UNARY = ["neg", "exp", "log", "sqrt", "abs", "sigmoid", "tanh", "relu",
         "gelu"]
BINARY = ["add", "sub", "mul", "div"]
SCALAR_OPS = ["pow", "scale", "shift", "leaky_relu"]
# Constructors: zeros, ones, full, from_data, rand, randn, arange.
KIND = {"zeros": 0, "ones": 1, "full": 2, "data": 3, "rand": 4, "randn": 5,
        "arange": 6}


class Program:
    def __init__(self):
        self.code = bytearray()

    def emit(self, op, *operands):
        self.code += bytes([OP[op]] + list(operands))
        return self

    def new(self, d, dt, shape, kind="data", seed=1, mult=3, lo=0, hi=1,
            grad=False, keep=False):
        return self.emit("new", d, DT[dt], int(keep), len(shape),
                         *shape, KIND[kind], seed, mult, SCALAR[lo],
                         SCALAR[hi], int(grad))

    def binary(self, op, d, x, y):
        return self.emit("binary", BINARY.index(op), d, x, y)

    def unary(self, op, d, x):
        return self.emit("unary", UNARY.index(op), d, x)

    def scalar(self, op, d, x, s):
        return self.emit("scalar", SCALAR_OPS.index(op), d, x, SCALAR[s])

    def reduce(self, k, d, x, axis, keep=False):
        return self.emit("reduce", ["sum", "mean", "max"].index(k), d, x,
                         AXIS[axis], int(keep))

    def reshape(self, d, x, shape):
        return self.emit("reshape", d, x, len(shape),
                         *[SIZE[s] for s in shape])

    def transpose(self, d, x, a, b):
        return self.emit("transpose", d, x, AXIS[a], AXIS[b])

    def softmax(self, d, x, axis, log=False):
        return self.emit("softmax", int(log), d, x, AXIS[axis])

    def xent(self, d, x, classes):
        """Targets made here: classes[i] in [-1, C + 1] for the N rows."""
        return self.emit("xent", d, x, 0, *[c + 1 for c in classes])

    def backward(self, x, how=1, twice=False, keepdim=False):
        self.emit("backward", x, how, int(twice))
        if how == 2:
            self.code.append(int(keepdim))
        return self

    def mode(self, anomaly, on):
        return self.emit("mode", int(anomaly), int(on))

    def inspect(self, what, x, *extra):
        return self.emit("inspect", what, x, *extra)

    def gradcheck(self, kind, index, axis, n, x, y, how=0):
        return self.emit("gradcheck", kind, index, AXIS[axis], n, x, y, how)


def programs():
    p = {}
    # A Linear layer, ReLU, cross-entropy, backward, gradients, DOT.
    p["mlp"] = (Program()
                .new(0, "f64", [4, 3], seed=3, mult=5)
                .new(1, "f64", [2, 3], kind="randn", lo=0, hi=1, grad=True,
                     keep=True)
                .new(2, "f64", [2], kind="rand", lo=-1, hi=1, grad=True,
                     keep=True)
                .emit("linear", 3, 0, 1, 1 | 2 << 1)
                .unary("relu", 4, 3)
                .xent(5, 4, [0, 1, 1, 0])
                .backward(5, how=0)
                .emit("grad", 6, 1)
                .inspect(2, 5)
                .inspect(1, 6, 0, 2))
    # Attention: causal with broadcast heads, a mask (T,S), backward; a
    # mask that does not broadcast and an E that differs.
    p["attention"] = (Program()
                      .new(0, "f64", [2, 3, 4], kind="randn", grad=True)
                      .new(1, "f64", [1, 4, 4], kind="randn", grad=True)
                      .new(2, "f64", [3, 4], kind="rand", lo=-1, hi=1,
                           grad=True)
                      .new(3, "f64", [3, 5], kind="randn")
                      .emit("attention", 4, 0, 1, 1, 0, 1)
                      .emit("attention", 5, 0, 1, 1, 1 | 2 << 1, 0)
                      .reduce("sum", 6, 5, "all")
                      .backward(6, how=0)
                      .emit("attention", 7, 0, 1, 1, 1 | 1 << 1, 0)
                      .emit("attention", 7, 0, 3, 3, 0, 0))
    # Broadcasting in every binary op, reduced with keepdim, backward twice.
    prog = (Program()
            .new(0, "f64", [2, 1, 3], seed=5, mult=1, grad=True)
            .new(1, "f64", [4, 1], seed=2, mult=7, grad=True))
    for op in BINARY:
        prog.binary(op, 2, 0, 1).reduce("sum", 3, 2, 1, keep=True)
    p["broadcast"] = prog.backward(3, how=1, twice=True).backward(0)
    # Batched matmul and its backward through the mean.
    p["matmul"] = (Program()
                   .new(0, "f32", [2, 2, 3], kind="randn", grad=True)
                   .new(1, "f32", [3, 4], kind="rand", lo=-1, hi=1,
                        grad=True)
                   .emit("matmul", 2, 0, 1)
                   .transpose(3, 2, -1, -2)
                   .emit("matmul", 4, 3, 0)
                   .backward(2, how=2, keepdim=True)
                   .emit("zero_grad", 0, 0)
                   .backward(2, how=3)
                   .emit("zero_grad", 1, 1)
                   .backward(2, how=3))
    # Reductions, softmax and reshapes over several axes.
    p["reduce_reshape"] = (Program()
                           .new(0, "f64", [2, 3, 4], seed=0, mult=1,
                                grad=True)
                           .reduce("max", 1, 0, -1)
                           .reduce("mean", 2, 0, "all", keep=True)
                           .softmax(3, 0, 1)
                           .softmax(4, 0, -1, log=True)
                           .reshape(5, 4, [4, -1, 2])
                           .reshape(6, 5, [24])
                           .emit("argmax", 7, 0, AXIS[1])
                           .binary("mul", 5, 6, 6)
                           .backward(5, how=1))
    # Tensors without elements, and shapes that cannot work.
    p["empty"] = (Program()
                  .new(0, "f32", [0, 3], kind="zeros", grad=True)
                  .new(1, "f32", [3, 0], kind="ones", grad=True)
                  .emit("matmul", 2, 0, 1)
                  .emit("matmul", 3, 1, 0)
                  .reduce("sum", 4, 3, "all")
                  .backward(4, how=0)
                  .reduce("max", 5, 0, 0)
                  .reduce("mean", 5, 0, "all")
                  .emit("mse", 6, 0, 0)
                  .emit("argmax", 6, 0, AXIS[1])
                  .reshape(7, 0, [0, "2^62"])
                  .reshape(7, 0, [-1, 0])
                  .binary("add", 6, 0, 1))
    # i32 tensors: labels, which no float op takes.
    p["i32"] = (Program()
                .new(0, "i32", [2, 3], seed=1, mult=1)
                .new(1, "f64", [2, 3], kind="full", seed=3, grad=True)
                .emit("requires_grad", 0, 1)
                .binary("add", 2, 0, 1)
                .unary("exp", 2, 0)
                .reshape(3, 0, [6])
                .reshape(4, 0, [3, 2, 1])
                .emit("detach", 5, 0, 1)
                .emit("mse", 6, 0, 0)
                .backward(0, how=0))
    # Anomaly detection on NaN and infinity, forward and backward.
    p["anomaly"] = (Program()
                    .mode(True, True)
                    .new(0, "f64", [3], kind="arange", seed=2 | 5 << 3,
                         mult=0, grad=True)
                    .unary("log", 1, 0)
                    .unary("sqrt", 2, 0)
                    .reduce("sum", 3, 2, "all")
                    .backward(3, how=0)
                    .scalar("pow", 4, 0, -1)
                    .mode(True, False)
                    .scalar("pow", 4, 0, -1)
                    .backward(4, how=1))
    # Grad mode off: nothing is recorded, backward refuses.
    p["no_grad"] = (Program()
                    .new(0, "f32", [2, 2], kind="ones", grad=True)
                    .mode(False, False)
                    .unary("tanh", 1, 0)
                    .backward(1, how=1)
                    .mode(False, True)
                    .unary("sigmoid", 2, 0)
                    .backward(2, how=1)
                    .emit("requires_grad", 2, 0))
    # The gradient checker on tiny f64 inputs.
    prog = (Program()
            .new(0, "f64", [2, 2], seed=4, mult=5, grad=True)
            .new(1, "f64", [2], seed=1, mult=3, grad=True))
    for kind in range(8):
        prog.gradcheck(kind, kind, -1, 1 + kind % 2, 0, 1, how=kind & 3)
    p["gradcheck"] = prog.gradcheck(0, 2, 0, 1, 1, 1, how=128)
    # Resets with leaves in the long-lived arena.
    p["reset"] = (Program()
                  .new(0, "f64", [3], grad=True, keep=True)
                  .new(1, "f64", [3], grad=True)
                  .binary("mul", 2, 0, 1)
                  .emit("reset", 0)
                  .unary("gelu", 3, 0)
                  .backward(3, how=1)
                  .emit("reset", 1)
                  .scalar("leaky_relu", 4, 0, 0.1)
                  .backward(4, how=2)
                  .emit("reset", 2)
                  .unary("abs", 5, 0))
    # Dropout at several rates.
    prog = Program().new(0, "f32", [4, 4], kind="ones", grad=True)
    for p_ in [0, 0.5, 0.99, 1, -0.5, "nan"]:
        prog.emit("dropout", 1, 0, SCALAR[p_], 0)
    p["dropout"] = prog.backward(1, how=1)
    # Constructors given bad or overflowing shapes.
    prog = Program()
    for a, b, c, how in [(0, 1, 2, 0), (4, 0, 1, 0), (1, 4, 1, 1),
                         (4, 4, 4, 1), (2, 4, 2, 0), (0, 3, 0, 2),
                         (4, 4, 1, 3), (4, 4, 1, 4), (4, 4, 1, 5)]:
        prog.emit("new_bad", a, b, c, how)
    p["new_bad"] = (prog.new(0, "bad", [2])
                    .new(1, "f32", [2], kind="full", seed=9)
                    .new(2, "i32", [2], kind="full", seed=3)
                    .new(3, "f64", [2], kind="arange", seed=6 << 3, mult=1))
    # Cross-entropy with targets out of range, and a wrong count.
    p["xent"] = (Program()
                 .new(0, "f64", [3, 2], kind="randn", grad=True)
                 .xent(1, 0, [0, 1, 2])
                 .xent(1, 0, [-1, 0, 1])
                 .xent(1, 0, [1, 0, 1])
                 .emit("xent", 2, 0, 2, 1, 1, 1, 1)
                 .backward(1, how=0)
                 .inspect(0, 1))
    # A chain of 2001 ops, longer than the backward sort's first 1024.
    p["chain"] = (Program()
                  .new(0, "f64", [2], grad=True, keep=True)
                  .emit("chain", 1, 0, 250)
                  .backward(1, how=1, twice=True)
                  .inspect(2, 1))
    higher_order_programs(p)
    # A convolution with padding 1 and a bias (the options are indexes
    # into op_conv's table), its backward, then pools of its result.
    p["conv"] = (Program()
                 .new(0, "f64", [1, 2, 3, 3], kind="randn", grad=True)
                 .new(1, "f64", [2, 2, 2, 2], kind="randn", grad=True)
                 .new(2, "f64", [2], grad=True)
                 .emit("conv", 3, 0, 1, 1 | 2 << 2, 1, 1, 1, 1, 1, 1, 1)
                 .backward(3, how=1)
                 .inspect(0, 1)
                 .emit("pool", 4, 3, 0, 2, 0, 0)
                 .emit("pool", 5, 3, 1, 3, 1, 1)
                 .emit("pool", 6, 0, 2, 2, 1, 0)
                 .backward(4, how=1))
    for name, prog in p.items():
        write("fuzz_ops", name, bytes(prog.code))


def higher_order_programs(p):
    """Programs of the v2 API: gradients of gradients, tangents, expand and
    cast."""
    p["gradients"] = (Program()
                      .new(0, "f64", [2, 3], seed=3, mult=5, grad=True,
                           keep=True)
                      .unary("tanh", 1, 0)
                      .reduce("sum", 2, 1, "all")
                      .emit("gradients", 3, 2, 0, 255, 1)
                      .reduce("sum", 4, 3, "all")
                      .emit("gradients", 5, 4, 0, 255, 0)
                      .emit("gradients", 6, 1, 0, 3, 1)
                      .backward(4, how=0))
    # Norms and losses: layer norm with weight and bias, batch norm in
    # training, cross-entropy with smoothing, Huber, then backward.
    p["norm_loss"] = (Program()
                      .new(0, "f64", [4, 3], kind="randn", grad=True)
                      .new(1, "f64", [3], kind="ones", grad=True)
                      .new(2, "f64", [3], grad=True)
                      .emit("norm", 3, 0, 0, 1, 2, 1, SCALAR[1e-9])
                      .emit("norm", 4, 2, 3, 1, 2, 2, SCALAR[0.1])
                      .new(5, "i32", [4], seed=0, mult=1)
                      .emit("loss", 6, 0, 4, 5, 128 + 1, SCALAR[1])
                      .emit("loss", 7, 3, 3, 0, 0, SCALAR[0.5])
                      .backward(7, how=1))
    p["dual"] = (Program()
                 .new(0, "f32", [3, 1], seed=2, mult=3)
                 .new(1, "f32", [3, 1], kind="randn", lo=0, hi=1)
                 .emit("dual", 2, 0, 1)
                 .unary("exp", 3, 2)
                 .emit("expand", 4, 3, 3, SIZE[2], SIZE[3], SIZE[-1])
                 .emit("cast", 5, 4, DT["f64"])
                 .emit("tangent", 6, 5)
                 .emit("cast", 7, 6, DT["i32"]))


# ---------------------------------------------------------------------
# BPE tokenizer files
# ---------------------------------------------------------------------

def bpe_input(vocab, merges):
    return struct.pack("<H", len(vocab)) + vocab + merges


def bpe_seeds():
    sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
    import make_bpe_fixture as ref
    import tempfile
    bpe = os.path.join(HERE, "..", "fixtures", "bpe")
    with tempfile.TemporaryDirectory() as tmp:
        v, m = os.path.join(tmp, "v.json"), os.path.join(tmp, "m.txt")
        tokens, merges = ref.train(b"aaab ab abc ab aa ab", 262,
                                   ["<|endoftext|>"])
        ref.write_files(tokens, merges, ["<|endoftext|>"], v, m)
        with open(v, "rb") as f:
            vocab = f.read()
        with open(m, "rb") as f:
            merge_text = f.read()
    write("fuzz_bpe", "small", bpe_input(vocab, merge_text))
    write("fuzz_bpe", "bytes_only", bpe_input(
        json.dumps({ref.mapped(t): i for i, t in enumerate(tokens[:256])},
                   ensure_ascii=False).encode(), b"#version: 0.2\n"))
    write("fuzz_bpe", "no_header", bpe_input(vocab, merge_text[14:]))
    write("fuzz_bpe", "truncated_vocab", bpe_input(vocab[:-20], merge_text))
    write("fuzz_bpe", "truncated_merges", bpe_input(vocab, merge_text[:-1]))
    write("fuzz_bpe", "unknown_part", bpe_input(
        vocab, merge_text + "\u4e2d a\n".encode()))
    write("fuzz_bpe", "escapes", bpe_input(
        vocab.replace(b'"!"', b'"\\u0021"'), merge_text))
    with open(os.path.join(bpe, "vocab.json"), "rb") as f:
        vocab = f.read()
    with open(os.path.join(bpe, "merges.txt"), "rb") as f:
        merge_text = f.read()
    write("fuzz_bpe", "fixture", bpe_input(vocab, merge_text))


def main():
    bpe_seeds()
    safetensors_seeds()
    idx_seeds()
    csv_seeds()
    programs()
    for harness in sorted(os.listdir(CORPUS)):
        folder = os.path.join(CORPUS, harness)
        files = os.listdir(folder)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in files)
        print("%s: %d files, %d bytes" % (harness, len(files), size))


if __name__ == "__main__":
    sys.exit(main())
