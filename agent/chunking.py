"""Split documents into overlapping chunks that fit the encoder's window, in the model's own tokens.

The splitting itself is semantic-text-splitter's (a kept library, Rust): it packs the largest
semantic units (paragraphs, then sentences, then words) that fit a token budget, counted with the
model's Hugging Face tokenizer, and overlaps neighbours by a number of tokens. Counting characters
instead (800 characters was the old rule) overflowed all-MiniLM-L6-v2's 256-token window on code,
JSON and long titles, and the encoder silently dropped the tail.

The budget of a chunk is what the window leaves once the [CLS]/[SEP] tokens and the document's
title (the contextual header `with_title` puts in front of every chunk) are counted, so a chunk as
indexed, title included, never exceeds the window. A title longer than a quarter of the window is
cut to that (on a token boundary) so it cannot crowd out the text.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from tokenizers import Tokenizer

SPECIAL_TOKENS = 2  # [CLS] and [SEP], which the encoder adds to every text
MIN_TEXT_TOKENS = 32  # a chunk keeps at least this much room for text, however long the title
# Characters per chunk text, whatever its tokens: BERT reads a "word" over 100 characters as one
# [UNK], so 254 tokens of base64 or minified data can be megabytes (the store's field holds 8192).
MAX_CHUNK_CHARS = 4096
MAX_TITLE_CHARS = 512
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(`])|\n+")


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str  # as indexed: the title line (if any) and the chunk's text
    start: int  # character offset of the chunk's text in the normalised document


def normalise_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def split_sentences(text: str) -> list[str]:
    """The sentences of a chunk the support scorer weighs (agent/generation.py), one per line or
    sentence break, list markup stripped, fragments under 12 characters dropped. Ingestion encodes
    exactly these (agent/stores/sentences.py), so the two must agree."""
    parts = (s.strip(" -*#>\t") for s in _SENTENCE_SPLIT.split(text))
    return [s for s in parts if len(s) >= 12]


def with_title(title: str | None, text: str) -> str:
    """A chunk as it is indexed: its document's title as the first line (a contextual header).

    A chunk from the middle of a section rarely names the section's topic; with the title in
    front, dense and BM25 search both see it. A chunk that already starts with the title (the
    first one, when the text opens with it) is left as it is.
    """
    title = " ".join((title or "").split())
    if not title or text.startswith(title):
        return text
    return f"{title}\n{text}"


class Chunker:
    """Token-aware chunker for one encoder: `split(text, title)` -> chunks that fit its window.

    `chunk_tokens` is the text budget of a chunk (capped by what the window leaves);
    `overlap_tokens` how many tokens neighbours share (at most half a chunk), so a fact cut in two
    appears whole in one.
    """

    def __init__(self, tokenizer: Tokenizer, max_tokens: int, chunk_tokens: int | None = None,
                 overlap_tokens: int = 0) -> None:
        if max_tokens <= SPECIAL_TOKENS + MIN_TEXT_TOKENS:
            raise ValueError(f"max_tokens {max_tokens} leaves no room for text")
        room = max_tokens - SPECIAL_TOKENS
        self.chunk_tokens = room if chunk_tokens is None else min(chunk_tokens, room)
        if not 0 <= 2 * overlap_tokens <= self.chunk_tokens:
            raise ValueError(f"overlap ({overlap_tokens} tokens) must be at most half the chunk size "
                             f"({self.chunk_tokens} tokens)")
        # Counting must see every token: the model's tokenizer.json may pad or truncate (this one
        # truncates at 128), which would make every text look the same size.
        self.tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.max_title_tokens = max_tokens // 4
        self._splitters: dict[int, object] = {}  # by capacity: titles of different lengths
        self._lock = threading.Lock()

    @classmethod
    def for_encoder(cls, encoder, chunk_tokens: int | None = None, overlap_tokens: int = 0) -> Chunker:
        """The encoder's tokenizer and window (`encoder.tokenizer`, `encoder.max_length`)."""
        return cls(encoder.tokenizer, encoder.max_length, chunk_tokens, overlap_tokens)

    def count(self, text: str) -> int:
        """Tokens the encoder sees for `text`, [CLS] and [SEP] included."""
        return len(self.tokenizer.encode(text, add_special_tokens=True).ids)

    def fit_title(self, title: str | None) -> str:
        """The title as one line, cut on a token boundary to at most a quarter of the window."""
        title = " ".join((title or "").split())[:MAX_TITLE_CHARS]
        if not title:
            return ""
        enc = self.tokenizer.encode(title, add_special_tokens=False)
        if len(enc.ids) <= self.max_title_tokens:
            return title
        return title[:enc.offsets[self.max_title_tokens - 1][1]].rstrip()

    def _splitter(self, capacity: int):
        from semantic_text_splitter import TextSplitter

        with self._lock:
            splitter = self._splitters.get(capacity)
            if splitter is None:
                splitter = TextSplitter.from_huggingface_tokenizer(
                    self.tokenizer, capacity, overlap=min(self.overlap_tokens, capacity // 2))
                self._splitters[capacity] = splitter
            return splitter

    def split(self, text: str, title: str | None = None) -> list[Chunk]:
        title = self.fit_title(title)
        title_tokens = len(self.tokenizer.encode(title, add_special_tokens=False).ids) if title else 0
        capacity = max(MIN_TEXT_TOKENS, min(self.chunk_tokens, self.max_tokens - SPECIAL_TOKENS - title_tokens))
        text = normalise_text(text)
        pieces = self._splitter(capacity).chunk_indices(text) if text else []
        if any(len(piece) > MAX_CHUNK_CHARS for _, piece in pieces):
            pieces = [(start + offset, part) for start, piece in pieces
                      for offset, part in self._by_chars(piece)]
        return [Chunk(i, with_title(title, piece), start) for i, (start, piece) in enumerate(pieces)]

    @staticmethod
    def _by_chars(piece: str) -> list[tuple[int, str]]:
        """A piece few tokens but many characters long (see MAX_CHUNK_CHARS), cut by characters."""
        from semantic_text_splitter import TextSplitter

        if len(piece) <= MAX_CHUNK_CHARS:
            return [(0, piece)]
        return TextSplitter(MAX_CHUNK_CHARS).chunk_indices(piece)
