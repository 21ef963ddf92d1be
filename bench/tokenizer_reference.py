#!/usr/bin/python3
"""tokenizer_reference.py: the reference for bench/tokenizer: loads the
vocab.json and merges.txt that bench/tokenizer --save DIR wrote, encodes the
same files with GPT-2's encoder (tests/fixtures/make_bpe_fixture.py's,
which follows encoder.py, with its cache), checks that it gives the ids of
DIR/ids.bin, id for id, and prints its encoding speed (the median of
--rounds passes; the first fills the cache). With --train V it instead
trains the reference (which recounts every pair at every merge: slow) on
the files to V tokens and checks that it writes DIR's two files byte for
byte.

Usage: tokenizer_reference.py [--rounds R | --train V] DIR FILE...
"""
import array
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "fixtures"))
import make_bpe_fixture as ref  # noqa: E402


def check_training(data, vocab_size, folder):
    """Trains the reference on data and compares its files with folder's."""
    import tempfile
    t0 = time.perf_counter()
    tokens, merges = ref.train(data, vocab_size, ["<|endoftext|>"])
    seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        ref.write_files(tokens, merges, ["<|endoftext|>"],
                        os.path.join(tmp, "vocab.json"),
                        os.path.join(tmp, "merges.txt"))
        for name in ("vocab.json", "merges.txt"):
            with open(os.path.join(tmp, name), "rb") as a, \
                    open(os.path.join(folder, name), "rb") as b:
                if a.read() != b.read():
                    print("python_train_equal=0 (%s differs)" % name)
                    return 1
    print("python_train_equal=1 merges=%d python_train_s=%.1f" %
          (len(merges), seconds))
    return 0


def main():
    args = sys.argv[1:]
    rounds = 3
    train_to = None
    if args[:1] == ["--rounds"]:
        rounds, args = int(args[1]), args[2:]
    elif args[:1] == ["--train"]:
        train_to, args = int(args[1]), args[2:]
    folder, files = args[0], args[1:]
    data = b"".join(open(f, "rb").read() for f in files)
    if train_to is not None:
        return check_training(data, train_to, folder)
    enc = ref.Encoder(os.path.join(folder, "vocab.json"),
                      os.path.join(folder, "merges.txt"))
    want = array.array("i")
    with open(os.path.join(folder, "ids.bin"), "rb") as f:
        want.frombytes(f.read())
    times = []
    for r in range(rounds):
        t0 = time.perf_counter()
        ids = enc.encode(data)
        times.append(time.perf_counter() - t0)
        if r == 0:
            if list(want) != ids:
                first = next((i for i, (a, b) in enumerate(zip(want, ids))
                              if a != b), min(len(want), len(ids)))
                print("ids differ from position %d (C %d ids, Python %d)" %
                      (first, len(want), len(ids)))
                return 1
            cold = times[0]
    mb = len(data) / 1e6
    print("python_ids_equal=1 python_encode_cold_MBps=%.2f "
          "python_encode_warm_MBps=%.2f" %
          (mb / cold, mb / sorted(times[1:] or times)[len(times[1:] or times) // 2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
