"""Token-aware chunking: no chunk as indexed (title included) exceeds the encoder's window, counted
with the model's own tokenizer, on prose, code, JSON, long titles and hostile text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.chunking import MAX_CHUNK_CHARS, MAX_TITLE_CHARS, SPECIAL_TOKENS, Chunker
from agent.embeddings import Encoder

REPO = Path(__file__).resolve().parents[2]
LONG_TITLE = "Operations guide — " + " / ".join(f"Section {i}: upgrading the cluster-wide configuration"
                                                  for i in range(12))  # ~512 characters, far over 64 tokens


@pytest.fixture(scope="module")
def chunker(encoder: Encoder) -> Chunker:
    return Chunker.for_encoder(encoder, overlap_tokens=32)


def window_tokens(encoder: Encoder, text: str) -> int:
    """What the encoder would see, without its truncation: [CLS] + tokens + [SEP]."""
    counting = Chunker.for_encoder(encoder).tokenizer  # a copy with padding and truncation off
    return len(counting.encode(text, add_special_tokens=True).ids)


def sources() -> dict[str, str]:
    code = (REPO / "agent" / "embeddings.py").read_text()
    data = json.dumps(json.loads((REPO / "bench" / "results" / "retrieval.json").read_text()), indent=2)
    prose = (REPO / "docs" / "agent.md").read_text()
    hostile = (("x" * 5000 + " ") * 4 + "数据库连接池配置" * 300 + " " + "🙂" * 400 + " "
               + "a-b_c.d/e:f;" * 600)  # 5,000-char words (one [UNK] each), CJK, emoji, punctuation
    return {"code": code, "json": data, "prose": prose, "hostile": hostile}


@pytest.mark.parametrize("kind", ["code", "json", "prose", "hostile"])
@pytest.mark.parametrize("title", [None, "Architecture", LONG_TITLE])
def test_no_chunk_exceeds_the_encoder_window(encoder: Encoder, chunker: Chunker, kind: str, title) -> None:
    text = sources()[kind]
    chunks = chunker.split(text, title)
    assert len(chunks) >= 3, "each source is several windows long"
    counts = [window_tokens(encoder, c.text) for c in chunks]
    assert max(counts) <= encoder.max_length, (kind, max(counts))
    assert max(len(c.text) for c in chunks) <= MAX_CHUNK_CHARS + MAX_TITLE_CHARS + 1  # fits the store's field
    # Chunks are full, not timid: the splitter packs up to the budget (prose and code especially).
    if kind in ("prose", "code") and title is None:
        assert max(counts) >= encoder.max_length - 40
    if title:
        head = chunker.fit_title(title)
        assert all(c.text.startswith(head + "\n") or c.text.startswith(head) for c in chunks)


def test_the_old_800_character_rule_overflowed_where_this_does_not(encoder: Encoder) -> None:
    """The failure this replaces: 800 characters of JSON or code are often more than 256 tokens."""
    data = sources()["json"]
    windows = [data[i:i + 800] for i in range(0, len(data) - 800, 650)]
    assert max(window_tokens(encoder, w) for w in windows) > encoder.max_length


def test_a_long_title_is_cut_on_a_token_boundary_and_leaves_room_for_text(encoder: Encoder, chunker: Chunker) -> None:
    head = chunker.fit_title(LONG_TITLE)
    assert LONG_TITLE.startswith(head) and len(head) < len(LONG_TITLE)
    assert window_tokens(encoder, head) - SPECIAL_TOKENS <= encoder.max_length // 4
    assert chunker.fit_title("  Install\n guide ") == "Install guide"
    assert chunker.fit_title(None) == ""
    chunks = chunker.split("Stop the old pods first. " * 200, LONG_TITLE)
    assert all(len(c.text) > len(head) + 200 for c in chunks[:-1])  # the text still gets most of the window


def test_chunks_overlap_cover_the_text_and_keep_offsets(encoder: Encoder) -> None:
    chunker = Chunker.for_encoder(encoder, chunk_tokens=64, overlap_tokens=16)
    text = " ".join(f"Sentence {i} is about topic {i}." for i in range(200))
    chunks = chunker.split(text)
    assert len(chunks) > 10
    for prev, nxt in zip(chunks, chunks[1:]):
        assert nxt.start < prev.start + len(prev.text)  # neighbours overlap
        assert text[nxt.start:nxt.start + len(nxt.text)] == nxt.text
    assert "Sentence 199 is about topic 199." in chunks[-1].text
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunker.split("short")[0].text == "short"
    assert chunker.split("   \n ") == []


def test_bad_sizes_are_refused(encoder: Encoder) -> None:
    with pytest.raises(ValueError, match="at most half the chunk size"):
        Chunker.for_encoder(encoder, chunk_tokens=64, overlap_tokens=40)
    with pytest.raises(ValueError, match="leaves no room"):
        Chunker(encoder.tokenizer, max_tokens=30)
    # A budget above the window is capped to the window.
    assert Chunker.for_encoder(encoder, chunk_tokens=10_000).chunk_tokens == encoder.max_length - SPECIAL_TOKENS
