#!/usr/bin/env python3
"""Writes tests/data/gguf_quant_vectors.gguf: for each ggml type stretch
dequantizes, a tensor "q.<TYPE>" of 2 rows of random blocks and "ref.<TYPE>",
the float32 values gguf-py's gguf.quants.dequantize gives for it (the
reference tests/unit/test_gguf_dequant.c compares trainer/gguf_dequant.c
with). Needs numpy and gguf (pip install gguf). Deterministic (seed 0).

    python3 tests/data/make_gguf_vectors.py
"""
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

# Byte offsets of the f16 scale fields in each block (set to sane values so
# random bytes never make inf/nan scales).
F16_FIELDS = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
              T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def main():
    rng = np.random.default_rng(0)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf_quant_vectors.gguf")
    w = gguf.GGUFWriter(path, "vectors")
    for t, fields in F16_FIELDS.items():
        block, size = GGML_QUANT_SIZES[t]
        rows, blocks = 2, 2 if block == 256 else 3
        raw = rng.integers(0, 256, size=(rows, blocks, size), dtype=np.uint8)
        for off in fields:
            scale = rng.uniform(-0.05, 0.05, size=(rows, blocks)).astype(np.float16)
            raw[:, :, off:off + 2] = scale.view(np.uint8).reshape(rows, blocks, 2)
        raw = raw.reshape(rows, blocks * size)
        w.add_tensor(f"q.{t.name}", raw, raw_dtype=t)
        w.add_tensor(f"ref.{t.name}", gguf.quants.dequantize(raw, t).astype(np.float32))
    x = rng.normal(size=(2, 8)).astype(np.float32)
    w.add_tensor("q.F16", x.astype(np.float16))
    w.add_tensor("ref.F16", x.astype(np.float16).astype(np.float32))
    bf = gguf.quants.quantize(x, T.BF16)
    w.add_tensor("q.BF16", bf, raw_dtype=T.BF16)
    w.add_tensor("ref.BF16", gguf.quants.dequantize(bf, T.BF16).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
