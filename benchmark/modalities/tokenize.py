"""Turn item titles into token ids for a text tower."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import torch

PAD_ID, CLS_ID, SEP_ID = 0, 101, 102
_FIRST_WORD_ID = 1000
_WORD = re.compile(r"\w+|[^\w\s]")


def hash_tokenize(titles: list[str], max_tokens: int, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic word-hash tokenizer for towers built with random weights.

    A random-weight tower has no vocabulary to honour; what matters for cost is the
    sequence length and that equal words map to equal ids (so synthetic titles stay learnable).
    """
    ids = torch.full((len(titles), max_tokens), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(titles), max_tokens), dtype=torch.long)
    span = max(vocab_size - _FIRST_WORD_ID, 1)
    for row, title in enumerate(titles):
        words = _WORD.findall(title.lower())[: max_tokens - 2]
        tokens = [CLS_ID] + [_FIRST_WORD_ID + zlib.crc32(word.encode()) % span for word in words] + [SEP_ID]
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
    return ids, mask


def pretrained_tokenize(titles: list[str], max_tokens: int, weights_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize with the checkpoint's own tokenizer (loaded from the local directory only)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(weights_dir), local_files_only=True)
    encoded = tokenizer(titles, max_length=max_tokens, truncation=True, padding="max_length", return_tensors="pt")
    return encoded["input_ids"].long(), encoded["attention_mask"].long()
