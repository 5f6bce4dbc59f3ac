"""Split documents into overlapping chunks on natural boundaries.

Chunks are measured in characters (cheap, predictable; ~800 chars stays under the encoder's
256-token window for English). A chunk ends at the last paragraph, sentence or word break before
the limit, and the next one starts `overlap` characters earlier so a fact cut in two still
appears whole in one chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BREAKS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ")


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    start: int  # character offset in the normalised document


def normalise_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def chunk_text(text: str, size: int = 800, overlap: int = 150) -> list[Chunk]:
    if overlap >= size:
        raise ValueError(f"overlap ({overlap}) must be smaller than size ({size})")
    text = normalise_text(text)
    chunks: list[Chunk] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            window = text[start:end]
            for brk in _BREAKS:
                cut = window.rfind(brk)
                if cut > size // 2:          # do not make tiny chunks just to hit a break
                    end = start + cut + len(brk.rstrip() or brk)
                    break
        piece = text[start:end].strip()
        if piece:
            chunks.append(Chunk(len(chunks), piece, start))
        if end >= len(text):
            break
        nxt = max(end - overlap, start + 1)
        # start the overlap on a word boundary
        space = text.find(" ", nxt, end)
        start = space + 1 if space != -1 else nxt
    return chunks


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
