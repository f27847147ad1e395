#!/usr/bin/env python3
"""qkv_dump.py - writes small Q/K/V dumps in the forms `attnbench import` reads, with nothing
but the Python standard library, so the README's import examples run on a fresh machine.

    python3 datasets/qkv_dump.py [DIR]     # default: the current folder

writes, as numpy would (np.savez and np.save, float32, little-endian):
  dump.npz           members q, k, v in the layout (layer, head, seq, dim)
  q.npy k.npy v.npy  the same tensors in the layout (layer, seq, head, dim)
for 2 layers, 4 query heads sharing 2 key/value heads, 128 positions, head dim 32. The values
are seeded Gaussian noise (seed 1): they stand in for a real model's dump and mean nothing.
"""
import os
import random
import struct
import sys
import zipfile

LAYERS, HEADS, KV_HEADS, SEQ, DIM = 2, 4, 2, 128, 32


def npy_bytes(shape, values):
    """The .npy (format 1.0) file of a float32 C-order array."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join(
        "%d, " % s for s in shape
    )
    pad = 64 - (10 + len(header) + 1) % 64
    header = (header + " " * (pad % 64) + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + struct.pack(
        "<%df" % len(values), *values
    )


def tensor(rng, heads):
    """(layer, head, seq, dim) values, flattened in C order."""
    return [rng.gauss(0.0, 1.0) for _ in range(LAYERS * heads * SEQ * DIM)]


def to_seq_major(values, heads):
    """(layer, head, seq, dim) -> (layer, seq, head, dim)."""
    out = []
    for l in range(LAYERS):
        for t in range(SEQ):
            for h in range(heads):
                base = ((l * heads + h) * SEQ + t) * DIM
                out.extend(values[base : base + DIM])
    return out


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "."
    rng = random.Random(1)
    q = tensor(rng, HEADS)
    k = tensor(rng, KV_HEADS)
    v = tensor(rng, KV_HEADS)
    heads = {"q": (q, HEADS), "k": (k, KV_HEADS), "v": (v, KV_HEADS)}
    with zipfile.ZipFile(os.path.join(folder, "dump.npz"), "w", zipfile.ZIP_STORED) as z:
        for name, (x, h) in heads.items():
            z.writestr(name + ".npy", npy_bytes((LAYERS, h, SEQ, DIM), x))
    for name, (x, h) in heads.items():
        with open(os.path.join(folder, name + ".npy"), "wb") as f:
            f.write(npy_bytes((LAYERS, SEQ, h, DIM), to_seq_major(x, h)))
    print("dump.npz (layer, head, seq, dim), q.npy k.npy v.npy (layer, seq, head, dim)")


if __name__ == "__main__":
    main()
