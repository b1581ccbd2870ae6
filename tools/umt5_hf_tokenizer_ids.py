#!/usr/bin/env python3
"""The independent tokenizer check of issue 17 (run on a machine with `transformers`, e.g. the GPU machine):
builds Hugging Face's T5TokenizerFast and T5Tokenizer from tests/fixtures/umt5/test-spiece.model, tokenizes the
prompts of tests/fixtures/umt5/tokenizer-ids.json as Wan's HuggingfaceTokenizer does (padding to 512, truncation,
special tokens on), and compares the ids with the pinned ones (from python3-sentencepiece + the fixture script's
rendering of the post-processing). Wan's cleaning runs with ftfy when it is installed, else the fixture's own
cleaning; the report says which. Prints one line per prompt and writes a JSON report."""
import argparse
import html
import json
import os
import re
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "umt5")


def wan_clean(text):
    import ftfy  # Wan's basic_clean + whitespace_clean
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import transformers
    table = json.load(open(os.path.join(FIXTURES, "tokenizer-ids.json"), encoding="utf-8"))
    model = os.path.join(FIXTURES, "test-spiece.model")
    try:
        import ftfy  # noqa: F401
        cleaning = "ftfy + Wan"
    except ImportError:
        cleaning = "fixture (no ftfy)"
    report = {"transformers": transformers.__version__, "cleaning": cleaning, "tokenizers": {}}
    # transformers 5 changed how a tokenizer is built from a bare spiece.model (the v4 `vocab_file=` constructor
    # gave a tokenizer with no vocabulary there: every prompt came out as [3, 2, 3, 2, ...]), so several ways are
    # tried, and a tokenizer whose vocabulary is not the model's piece count is reported void, never compared.
    folder = tempfile.mkdtemp()
    shutil.copy(model, os.path.join(folder, "spiece.model"))
    ways = [("T5TokenizerFast.from_pretrained", lambda: transformers.T5TokenizerFast.from_pretrained(folder, extra_ids=0)),
            ("T5Tokenizer.from_pretrained", lambda: transformers.T5Tokenizer.from_pretrained(folder, extra_ids=0)),
            ("T5TokenizerFast(vocab_file)", lambda: transformers.T5TokenizerFast(vocab_file=model, extra_ids=0)),
            ("T5Tokenizer(vocab_file)", lambda: transformers.T5Tokenizer(vocab_file=model, extra_ids=0))]
    pieces = table.get("vocab")  # the model's piece count, written by tools/make_umt5_tokenizer_fixture.py
    for name, make in ways:
        try:
            tokenizer = make()
        except Exception as error:  # noqa: BLE001 (report and go on: e.g. protobuf missing for the conversion)
            report["tokenizers"][name] = {"error": repr(error)}
            print(name, "cannot be built:", repr(error))
            continue
        size = len(tokenizer)
        report["tokenizers"][name] = {"class": type(tokenizer).__name__, "vocab_size": size}
        if pieces is not None and size != pieces:
            report["tokenizers"][name]["void"] = f"vocabulary of {size}, the model has {pieces} pieces"
            print(name, "is void:", report["tokenizers"][name]["void"])
            continue
        rows, mismatches = [], 0
        for entry in table["prompts"]:
            text = wan_clean(entry["prompt"]) if cleaning.startswith("ftfy") else entry["cleaned"]
            encoded = tokenizer([text], padding="max_length", truncation=True, max_length=table["max_tokens"],
                                add_special_tokens=True)
            ids = [i for i, m in zip(encoded.input_ids[0], encoded.attention_mask[0]) if m]
            same = ids == entry["ids"]
            mismatches += not same
            rows.append({"name": entry["name"], "same": same, "cleaned_same": text == entry["cleaned"],
                         "hf_ids": ids if not same else None})
            print(f"{name:16s} {entry['name']:16s} {'same' if same else 'DIFFERENT'}"
                  f"{'' if text == entry['cleaned'] else ' (cleaning differs)'}")
        report["tokenizers"][name].update({"mismatches": mismatches, "rows": rows})
    json.dump(report, open(args.out, "w"), ensure_ascii=False, indent=1)


if __name__ == "__main__":
    sys.exit(main())
