#!/usr/bin/env python3
"""Makes the byte-level BPE test fixtures of tests/unit/test_tok.c with the
reference implementation, Hugging Face `tokenizers` (pip install tokenizers;
only needed to regenerate, never to build or test).

For each of three pre-tokenizer styles it trains a small byte-level BPE on
the multilingual text below and writes, under tests/data/<name>/,
  tokenizer.json  the trained tokenizer (as tokenizers saves it)
  expected.json   {"cases": [{"text": ..., "ids": [...], "piece_ends": [...]}]}:
                  test texts, the ids tokenizers gives them (encode(text).ids)
                  and where the pieces of its pre-tokenizer end (in bytes;
                  added tokens are not split off there)

  bpe_tiny         GPT-2: ByteLevel pre-tokenizer with its regex
  bpe_tiny_cross   merges trained without any pre-tokenizer split, so that
                   many merges cross the boundaries the pre-tokenizers draw
                   (a wrong boundary changes the ids); expected.json also
                   holds "variants": other pre_tokenizer settings (Llama-3,
                   Qwen2, Digits individual or not, no regex, ...) and the
                   ids tokenizers gives with each
  bpe_tiny_llama3  Llama-3: Split(Llama-3 regex, Isolated) + ByteLevel(no regex),
                   model.ignore_merges = true
  bpe_tiny_digits  SmolLM2: Digits(individual_digits) + ByteLevel(regex), merges
                   written as "a b" strings

Usage: python3 tests/data/make_bpe_vectors.py   (from the repository root)
"""
import json
import os
import random

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB_SIZE = 1200
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Training text: sentences in many scripts; the corpus is a seeded shuffle of them.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "It's a truth universally acknowledged that we'll need more data, isn't it?",
    "They're sure you've seen what I'd done, and I'm glad they'll say so.",
    "Training a language model on longer sequences needs position interpolation.",
    "The model was trained on 4096 tokens and extended to 131072 tokens in two stages.",
    "Le cœur a ses raisons que la raison ne connaît point; où est la fenêtre ?",
    "Élève, garçon, naïve, déjà vu, façade, rôle, crème brûlée, l'été dernier.",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein; Straße, Größe, Mädchen.",
    "El niño pequeño comió paella en la montaña; ¿dónde está la biblioteca? ¡Olé!",
    "Zażółć gęślą jaźń; Łódź leży w środkowej Polsce.",
    "Tiếng Việt có nhiều dấu: người, được, những, trường học.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο. Ελληνικά!",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Щастя — це коли тебе розуміють; Україна, Київ, їжак.",
    "我们在北京学习中文。机器学习模型需要大量的数据和计算资源。",
    "今日は良い天気ですね。東京タワーに行きましょう。カタカナとひらがな。",
    "안녕하세요, 세계! 한국어 문장을 토큰화합니다.",
    "مرحبا بالعالم، هذه جملة باللغة العربية.",
    "שלום עולם, זה משפט בעברית.",
    "नमस्ते दुनिया, यह हिंदी में एक वाक्य है।",
    "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "Emoji: 😀 🚀 🎉 👍🏽 ❤️ 👩‍💻 🇫🇷 and symbols ©®™ ±×÷ €£¥ → ← ∞ ≤ ≥.",
    "def train(model, data, lr=3e-4):\n    for step, batch in enumerate(data):\n        loss = model(batch)\n",
    "int main(void) {\n\tprintf(\"%d\\n\", x[i] + y[j]);\n\treturn 0;\n}\n",
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null, "b": true}}',
    "https://example.com/path/to/file.html?query=1&other=two#anchor",
    "Numbers: 0 1 12 123 1234 12345 3.14159 2.71828 1,000,000 0xFF 1e-9 -42 +7",
    "Dates 2024-01-15, times 12:34:56, phone +1 (555) 123-4567.",
    "    indented line\n\n\nafter blank lines   \n\ttabbed\r\nwindows line\r\n",
    "Mixed 中文 and English, Русский и English, ελληνικά and English.",
    "Fullwidth ０１２３ ＡＢＣ, superscripts x² y³, fractions ½ ¾, Roman Ⅻ ⅷ.",
    "<|im_start|>user\nWhat is RoPE scaling?<|im_end|>\n<|im_start|>assistant\n",
    "Document one ends here.<|endoftext|>Document two starts here.",
    "Olde ſpelling: it'ſ 'ſtrength' and 'ſenſe', Paſſion, the 'ſſ'.",
    "Line one\nLine two\r\nLine three\n\nvalue=42\nx'Ll y'SS z'Dx.",
    "Contractions glued to words: I'LLama, we'REally, they'VEry, he'Dx, it'ſx, 'ſtrength.",
    "x =\t(1 + 2)\t# tabbed comment\n\t[list]\t{dict}\n«Bonjour» —voilà 😀abc ½cup",
]


def corpus(seed=0, n_lines=3000):
    """Half whole sentences, half words of all sentences shuffled and joined
    by assorted separators (so merges also learn the seams between words)."""
    rng = random.Random(seed)
    words = [w for sentence in SENTENCES for w in sentence.split()]
    seps = [" ", " ", " ", " ", "  ", "\n", "\t", "\r\n", "\n\n", ", ", ". ", " (", ") "]
    lines = []
    for i in range(n_lines):
        if i % 2 == 0:
            line = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 3)))
        else:
            parts = []
            for _ in range(rng.randint(5, 30)):
                parts.append(rng.choice(words))
                parts.append(rng.choice(seps))
            line = "".join(parts)
        if rng.random() < 0.3:
            line += " " + str(rng.randint(0, 10 ** rng.randint(1, 8)))
        lines.append(line)
    return lines


# Test texts: a long multilingual text (partly unseen words) and edge cases of
# every regex alternative, white space runs, added tokens, numbers.
TESTS = [
    "Long-context training extends a model's window: 8K -> 32K -> 128K tokens, "
    "étape par étape, Schritt für Schritt, шаг за шагом, βήμα προς βήμα, 一步一步地, "
    "段階的に, 단계적으로, خطوة بخطوة, צעד אחר צעד, क़दम दर क़दम, ทีละขั้น. "
    "Unseen words: supercalifragilistic, Wörterbücher, неизвестныеслова, 未知的词语. "
    "We've trained 135000000 parameters for 3.5 hours at 12,345 tok/s 🚀🔥 ✓.\n\n"
    "  code:\tx = f(a, b)  # note\r\n    return {\"k\": [1, 2]}\n\n\n   end   ",
    "",
    " ",
    "   ",
    "\n",
    "a",
    "a   b",
    "a \n b",
    "a  \n  \n  b",
    "x \r\n\r\n y",
    "trailing spaces   ",
    "  leading spaces",
    "\t\ttabs\tinside\t",
    "don't I'LL we'Re it's They'VE he'D you'M 'sx 'Sx 'ſx x'K it'ſ 'ſtrength 'ſenſe",
    "Line\nline\r\nLine\n\nvalue=42\nx'Ll y'SS z'Dx",
    "I'LLama we'REally they'VEry he'Dx it'ſx 'ſtrength 'ſenſe x'lex y'rlz w'vlq 'l 'r",
    "y =\t(3 + 4)\t# tabs\n\t[a]\t{b}\n«Salut» —voilà 😀abc ½cup",
    "1 12 123 1234 12345 123456 1234567 3.14159 ０１２３ ²³ Ⅻ 第3章 ١٢٣",
    "?abc ...def !!!ghi (jkl) [mno] {pqr} @stu #vwx $yz",
    "e\u0301 a\u0308 n\u0303 \u0915\u093f \u0e01\u0e34",
    "a\u00a0b a\u3000b a\u2028b a\u0085b a\u200bb",
    "ǅemal ʰaspirated ªº ᵃᵇ ﬁﬂ",
    "👩‍💻 🇫🇷🇩🇪 👍🏽 ❤️ 😀😀😀",
    "<|endoftext|>hello<|endoftext|>world<|endoftext|>",
    "<|endoftext|",
    "<|im_start|>user\nhi<|im_end|>\n",
    "use <tool> here<tool><tool>",
    "def f(x):\n    return x**2  # square\n\n\nclass A:\n\tpass\n",
    "Тест ТЕСТ тест Ёлка ёлка ΑΒΓ αβγ ÀÉÎ àéî",
    "日本語のテキストと中文文本和한국어텍스트",
    "\n\n\n\n",
    "    ",
    "end with newline\n",
]


QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def byte_level(regex):
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=regex)


def split(regex):
    return pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False)


# Pre-tokenizer variants checked on the bpe_tiny_cross vocabulary.
VARIANTS = [
    ("llama3", lambda: pre_tokenizers.Sequence([split(LLAMA3_REGEX), byte_level(False)]), True),
    ("llama3_merges", lambda: pre_tokenizers.Sequence([split(LLAMA3_REGEX), byte_level(False)]), False),
    ("qwen2", lambda: pre_tokenizers.Sequence([split(QWEN2_REGEX), byte_level(False)]), False),
    ("digits_gpt2", lambda: pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     byte_level(True)]), False),
    ("digit_runs_gpt2", lambda: pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=False),
                                                         byte_level(True)]), False),
    ("split_gpt2", lambda: pre_tokenizers.Sequence([split(GPT2_REGEX), byte_level(False)]), False),
    ("no_split", lambda: byte_level(False), False),
]


def piece_ends(pre, text):
    """Where the pieces of pre.pre_tokenize_str(text) end, in UTF-8 bytes."""
    byte_at = [0]
    for ch in text:
        byte_at.append(byte_at[-1] + len(ch.encode()))
    ends, at = [], 0
    for _, (a, b) in pre.pre_tokenize_str(text):
        assert a == at, "pieces must tile the text"
        ends.append(byte_at[b])
        at = b
    assert at == len(text)
    return ends


def variant_cases(tok):
    out = []
    for name, make, ignore_merges in VARIANTS:
        spec = json.loads(tok.to_str())
        spec["model"]["ignore_merges"] = ignore_merges
        edited = Tokenizer.from_str(json.dumps(spec))
        edited.pre_tokenizer = make()
        pre = json.loads(edited.to_str())["pre_tokenizer"]
        edited = Tokenizer.from_str(edited.to_str())
        ids = [edited.encode(t, add_special_tokens=False).ids for t in TESTS]
        for t, i in zip(TESTS, ids):
            assert edited.decode(i, skip_special_tokens=False) == t, (name, t)
        out.append({"name": name, "pre_tokenizer": pre, "ignore_merges": ignore_merges, "ids": ids,
                    "piece_ends": [piece_ends(make(), t) for t in TESTS]})
    return out


def train(pre_tokenizer, ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=SPECIALS, show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    return tok


def add_tool(tok):
    """A non-special added token (normalized: matched in the second pass)."""
    tok.add_tokens([AddedToken("<tool>", normalized=True, special=False)])
    return tok


def add_whole_words(tok, n=6):
    """Adds the longest words of the first test text to the vocabulary
    without merges that make them: only ignore_merges reaches them (as some
    Llama-3 tokens are). Returns the edited tokenizer."""
    words = [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(TESTS[0])]
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    next_id = max(max(vocab.values()), max(t["id"] for t in spec["added_tokens"])) + 1
    for word in sorted(set(words), key=lambda w: (-len(w.encode()), w))[:n]:
        # The pre-tokenizer already maps bytes (ByteLevel): word is in vocab form.
        if word not in vocab:
            vocab[word] = next_id
            next_id += 1
    return Tokenizer.from_str(json.dumps(spec))


def added_id_case(tok):
    """tokenizers does not trust the id of an added token that is not in the
    vocabulary: it gives it the next free id. Records what it gives when the
    file says 5000 for <tool>."""
    spec = json.loads(tok.to_str())
    for t in spec["added_tokens"]:
        if t["content"] == "<tool>":
            t["id"] = 5000
    edited = Tokenizer.from_str(json.dumps(spec))
    text = "x<tool>y"
    return {"content": "<tool>", "json_id": 5000, "text": text,
            "ids": edited.encode(text, add_special_tokens=False).ids,
            "vocab_size": edited.get_vocab_size()}


def added_more_case(tok):
    """Two more special tokens: "tool>" (found in the first pass, before the
    normalized <tool> of the second) and "<|im_start|>x" (longer than
    <|im_start|>, which it starts with). Records the tokens to append to
    added_tokens and the ids tokenizers gives."""
    spec = json.loads(tok.to_str())
    extra = [{"id": 0, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for c in ("tool>", "<|im_start|>x")]
    spec["added_tokens"] += extra
    edited = Tokenizer.from_str(json.dumps(spec))
    for t in extra:
        t["id"] = edited.token_to_id(t["content"])
    texts = ["use <tool> here<tool>!", "<|im_start|>x<|im_start|>y<|im_start|>"]
    return {"append": extra,
            "cases": [{"text": t, "ids": edited.encode(t, add_special_tokens=False).ids} for t in texts]}


def unk_cases():
    """A vocabulary without most bytes: bytes without a token become unk
    (fused or not) or are dropped when there is no unk token."""
    out = []
    for unk, fuse in ((None, False), ("<unk>", False), ("<unk>", True)):
        spec = {"version": "1.0", "added_tokens": [], "normalizer": None,
                "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                  "use_regex": True},
                "post_processor": None,
                "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                            "use_regex": True},
                "model": {"type": "BPE", "dropout": None, "unk_token": unk, "fuse_unk": fuse,
                          "byte_fallback": False, "ignore_merges": False,
                          "vocab": {"a": 0, "b": 1, "ab": 2, "<unk>": 3, "Ġ": 4, "Ġa": 5},
                          "merges": ["a b", "Ġ a"]}}
        tok = Tokenizer.from_str(json.dumps(spec))
        texts = ["abXYab", "a b", "XaX", "cab", "xyz", " abc"]
        out.append({"tokenizer": spec, "cases": [
            {"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts]})
    return out


def dump_lines(obj):
    """JSON with one line per key, and per item of a list of objects."""
    one = lambda x: json.dumps(x, ensure_ascii=False)
    lines = []
    for k, v in obj.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            lines.append(f"{one(k)}: [\n" + ",\n".join(one(x) for x in v) + "\n]")
        else:
            lines.append(f"{one(k)}: {one(v)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write(name, tok, check_ignore_merges=False, check_added_ids=False, string_merges=False,
          variants=False):
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "tokenizer.json")
    tok.save(path, pretty=False)
    if string_merges:  # the older "a b" form of the merges, which tokenizers also reads
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        spec["model"]["merges"] = [" ".join(m) for m in spec["model"]["merges"]]
        with open(path, "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False, separators=(",", ":"))
    tok = Tokenizer.from_file(path)  # what the C test reads
    cases = []
    for text in TESTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) == text, (name, text)
        cases.append({"text": text, "ids": ids, "piece_ends": piece_ends(tok.pre_tokenizer, text)})
    expected = {"generator": f"tokenizers {tokenizers.__version__}",
                "vocab_size": tok.get_vocab_size(), "cases": cases}
    if check_added_ids:
        expected["added_id"] = added_id_case(tok)
        expected["added_more"] = added_more_case(tok)
        expected["unk"] = unk_cases()
    if variants:
        expected["variants"] = variant_cases(tok)
        for v in expected["variants"]:
            print(f"  variant {v['name']}: {sum(a != b['ids'] for a, b in zip(v['ids'], cases))} "
                  f"of {len(cases)} texts differ from the file's own pre-tokenizer")
    with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
        f.write(dump_lines(expected))
    n_ids = sum(len(c["ids"]) for c in cases)
    print(f"{name}: vocab {tok.get_vocab_size()}, {len(TESTS)} texts, {n_ids} ids, "
          f"{os.path.getsize(path)} bytes")
    if check_ignore_merges:  # the fixture must tell ignore_merges apart
        spec = json.loads(tok.to_str())
        spec["model"]["ignore_merges"] = False
        plain = Tokenizer.from_str(json.dumps(spec))
        differ = sum(tok.encode(t).ids != plain.encode(t).ids for t in TESTS)
        print(f"  texts whose ids change without ignore_merges: {differ}")
        assert differ > 0


def main():
    write("bpe_tiny", add_tool(train(byte_level(True))), check_added_ids=True)
    cross = add_tool(train(byte_level(False)))
    cross.pre_tokenizer = byte_level(True)
    write("bpe_tiny_cross", cross, variants=True)
    llama3 = train(pre_tokenizers.Sequence([split(LLAMA3_REGEX), byte_level(False)]), ignore_merges=True)
    write("bpe_tiny_llama3", add_tool(add_whole_words(llama3)), check_ignore_merges=True)
    write("bpe_tiny_digits", add_tool(train(pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True), byte_level(True)]))), string_merges=True)


if __name__ == "__main__":
    main()
