#!/usr/bin/env python3
"""Read `stretch export --format gguf` files with gguf-py (pip install gguf),
an independent GGUF reader: every key (printed with its value, lists as
their length and first items) and every tensor (dequantized with
gguf.quants.dequantize).

  python3 bench/gguf_pyread.py M_F32.gguf [OTHER.gguf ...]

The first file is the reference: each other file must hold the same keys
(general.file_type and general.quantization_version aside) and tensors of
the same names and shapes, whose dequantized values differ from the
reference's by at most the type's bound (F16 2^-11, BF16 2^-8 relative per
element; Q8_0 0.5625 * max|block| / 127 per 32-element block). Prints the
largest error per file relative to that bound. Exit 1 on any difference.
"""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.constants import GGMLQuantizationType as Q
from gguf.quants import dequantize


def read(path):
    r = GGUFReader(path)
    keys = {}
    for name, f in r.fields.items():
        keys[name] = f.contents()
    tensors = {}
    for t in r.tensors:
        x = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)
        tensors[t.name] = (t.tensor_type, tuple(int(d) for d in t.shape), x)
    return keys, tensors


def show(v):
    if isinstance(v, list):
        return f"[{len(v)} items: {', '.join(repr(x) for x in v[:4])}{', ...' if len(v) > 4 else ''}]"
    return repr(v)


def bound(typ, ref):
    if typ == Q.F32:
        return np.zeros_like(ref)
    if typ == Q.F16:
        return np.maximum(np.abs(ref) * 2.0 ** -11, 2.0 ** -25)
    if typ == Q.BF16:
        return np.abs(ref) * 2.0 ** -8
    if typ == Q.Q8_0:
        amax = np.abs(ref.reshape(-1, 32)).max(1, keepdims=True)
        d = amax / 127
        return np.broadcast_to(d / 2 + 127 * np.maximum(d * 2.0 ** -11, 2.0 ** -25), (amax.size, 32)).reshape(-1)
    raise ValueError(f"type {typ.name} not expected")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    ref_keys, ref_t = read(sys.argv[1])
    print(f"{sys.argv[1]}: {len(ref_keys)} keys, {len(ref_t)} tensors")
    for k, v in ref_keys.items():
        print(f"  {k} = {show(v)}")
    for name, (typ, shape, x) in ref_t.items():
        print(f"  tensor {name} {typ.name} {shape} mean|x| {np.abs(x).mean():.4g}")
    bad = 0
    for path in sys.argv[2:]:
        keys, ts = read(path)
        skip = {"general.file_type", "general.quantization_version", "GGUF.kv_count"}
        diff = [k for k in set(keys) | set(ref_keys) if k not in skip and
                (k not in keys or k not in ref_keys or keys[k] != ref_keys[k])]
        if diff:
            print(f"{path}: keys differ: {sorted(diff)}")
            bad += 1
        worst, types = 0.0, set()
        for name, (typ, shape, x) in ts.items():
            rtyp, rshape, r = ref_t.get(name, (None, None, None))
            if r is None or rshape != shape:
                print(f"{path}: tensor {name} {shape} vs reference {rshape}")
                bad += 1
                continue
            types.add(typ.name)
            b = bound(typ, r)
            e = np.abs(x - r)
            if np.any(e > b + 1e-30):
                i = int(np.argmax(e - b))
                print(f"{path}: tensor {name} element {i}: {x[i]} vs {r[i]} beyond {b[i]}")
                bad += 1
            nz = b > 0
            if nz.any():
                worst = max(worst, float((e[nz] / b[nz]).max()))
        print(f"{path}: {len(keys)} keys, {len(ts)} tensors ({', '.join(sorted(types))}); "
              f"largest error / bound {worst:.3f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
