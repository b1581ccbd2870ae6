#!/usr/bin/env python3
"""Makes tests/fixtures/umt5/: a small SentencePiece model trained here (the real umT5 spiece.model cannot be
downloaded on the build machine) and the token ids of a table of prompts, for tests/test_umt5_tokenizer.cpp.

The ids come from python3-sentencepiece (an implementation independent of the engine's C++ code path only in its
bindings: both use the SentencePiece library) plus this script's own rendering of what Wan's HuggingfaceTokenizer
does around it: Wan's cleaning without ftfy's mojibake repair (see docs/text-encoder.md), EOS (id 1) appended,
truncation to 512 ids with EOS kept. tools/umt5_hf_tokenizer_ids.py checks the same table with Hugging Face's
T5TokenizerFast / T5Tokenizer on a machine that has `transformers`.

Run with Debian's python3 (it has sentencepiece): /usr/bin/python3 tools/make_umt5_tokenizer_fixture.py
"""
import html
import io
import json
import os
import re
import sys

import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "umt5")
MAX_TOKENS = 512
EOS_ID = 1

# Unicode White_Space (the `regex` module's \s, which Wan's whitespace_clean uses).
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
             "\u2028\u2029\u202f\u205f\u3000"
WHITESPACE_RUN = re.compile("[" + re.escape(WHITESPACE) + "]+")
# ftfy's uncurl_quotes (on by default in fix_text): curly single / double quotes to ASCII.
SINGLE_QUOTES = re.compile("[\u02bc\u2018-\u201b]")
DOUBLE_QUOTES = re.compile("[\u201c-\u201f]")


def clean(text):
    text = SINGLE_QUOTES.sub("'", DOUBLE_QUOTES.sub('"', text))
    text = html.unescape(html.unescape(text)).strip(WHITESPACE)
    return WHITESPACE_RUN.sub(" ", text).strip(WHITESPACE)


def corpus():
    english = [
        "a red circle moves right across a blue background",
        "the camera slowly pans over a quiet mountain lake at sunrise",
        "a cat wearing sunglasses is sitting on a surfboard, cinematic lighting",
        "two dogs run through the snow; one of them barks loudly!",
        "close-up of a chef chopping vegetables in a busy kitchen (4k, hdr)",
        "an astronaut rides a horse on the moon, 35mm film, grainy",
        "It's 10:30 pm and the city lights are reflected in the rain-soaked streets.",
        "\"Hello,\" she said, \"what's the price? $12.99 or 15%?\"",
        "numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 3.14159 42",
    ]
    accents = [
        "un café crème à la terrasse, l'été à Paris",
        "el niño juega en la montaña con su pequeño perro",
        "Straße, Größe, Mädchen und Jürgen fahren über die Brücke",
        "São Paulo à noite, coração, ação",
    ]
    cjk = [
        "一只小猫在草地上玩耍，阳光明媚。",
        "城市的夜景非常美丽",
        "桜の花が風に舞う春の日",
        "東京の街を歩く人々",
        "한국어 문장도 조금 있습니다",
    ]
    lines = []
    for round_ in range(30):
        for group in (english, accents, cjk):
            for i, line in enumerate(group):
                lines.append(line if (round_ + i) % 3 else line.lower())
    return "\n".join(lines) + "\n"


def prompts():
    long_prompt = " ".join(
        f"scene {i}: a small red boat drifts past the old lighthouse while seagulls circle overhead." for i in range(60))
    return [
        ("plain", "a red circle moves right"),
        ("punctuation", "Wait... what?! (yes) -- \"quoted\", 'single'; a/b: c & d"),
        ("digits", "In 2024, 3.14159 is pi; 1,000,000 people; 42nd street, 7:45 am"),
        ("cjk", "一只小猫在草地上玩耍，阳光明媚。桜の花が風に舞う"),
        ("emoji", "a happy dog 🐶 runs 🏃 on the beach 🌊✨"),
        ("accents", "un café crème à la terrasse; Straße und Größe; São Paulo"),
        ("html_entities", "Tom &amp;amp; Jerry &lt;3 caf&eacute; &#233;t&#xE9; &quot;hi&quot;"),
        ("whitespace", "  many\t\tspaces \n and\u3000ideographic\u00a0space  "),
        ("curly_quotes", "\u201cit\u2019s a \u2018test\u2019\u201d"),
        ("fullwidth_nfkc", "ＡＢＣ１２３ ﬁne"),
        ("over_512_tokens", long_prompt),
    ]


# Edge cases of html.unescape (Python's own results are pinned, the engine reimplements the rules).
HTML_CASES = ["&amp", "&ampx", "&amp;amp;", "&#0;", "&#x80;", "&#128;", "&#x9F;", "&#xD800;", "&#1114112;",
              "&#99999999999999999999;", "&notit;", "&notin;", "&#65", "&#x41g", "& amp;", "&;", "&#;", "&#x;",
              "&AMP;", "&Amp;", "&#9;", "&#13;", "&#1;", "&#xFFFE;", "&#x1FFFF;", "&eacute&eacute;", "&NotEqualTilde;",
              "a&b", "&lt;&lt", "&thetasym;", "&zwj;x", "&#x1F600;", "&" + "a" * 40 + ";"]


def main():
    os.makedirs(OUT, exist_ok=True)
    model = io.BytesIO()
    # T5's special ids: pad 0, eos 1, unk 2, no bos; byte fallback as umT5 (emoji and rare characters become bytes).
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus().splitlines()), model_writer=model, vocab_size=512, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, byte_fallback=True, character_coverage=1.0,
        normalization_rule_name="nmt_nfkc", num_threads=1, seed_sentencepiece_size=100000,
        minloglevel=2)
    model_bytes = model.getvalue()
    with open(os.path.join(OUT, "test-spiece.model"), "wb") as f:
        f.write(model_bytes)
    processor = spm.SentencePieceProcessor(model_proto=model_bytes)
    table = []
    for name, prompt in prompts():
        cleaned = clean(prompt)
        ids = processor.encode(cleaned, out_type=int)[: MAX_TOKENS - 1] + [EOS_ID]
        table.append({"name": name, "prompt": prompt, "cleaned": cleaned, "ids": ids})
    with open(os.path.join(OUT, "tokenizer-ids.json"), "w", encoding="utf-8") as f:
        json.dump({"made_by": "python3-sentencepiece " + spm.__version__ + " + tools/make_umt5_tokenizer_fixture.py",
                   "vocab": processor.get_piece_size(), "max_tokens": MAX_TOKENS, "prompts": table,
                   "html_unescape": [[case, html.unescape(case)] for case in HTML_CASES]}, f,
                  ensure_ascii=False, indent=1)
    print(f"wrote {OUT}: vocab {processor.get_piece_size()}, {len(table)} prompts, "
          f"longest {max(len(p['ids']) for p in table)} ids")


if __name__ == "__main__":
    sys.exit(main())
