"""The benchmark corpus: real English technical text already on this machine, built at run time.

Sources, in order, until enough chunks exist: Python's documentation topics (`pydoc_data.topics`),
then docstrings of the standard library and of large installed packages (numpy, scipy, ...), read
with `ast` (nothing is imported, so no module side effects). Nobody on this project wrote any of it,
and none of it is committed. Chunks are cut by characters with semantic-text-splitter (the library
behind the agent's token-aware chunker; these chunks go straight into the store, not through the
agent's ingestion), exact duplicates removed (copied docstrings would make "the relevant chunk"
ambiguous).
"""

from __future__ import annotations

import ast
import random
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.chunking import normalise_text

# Site-packages with large, mostly hand-written docstrings; missing ones are skipped.
PACKAGES = ("numpy", "scipy", "networkx", "sympy", "pandas", "sklearn", "torch", "transformers")
_SKIP_DIRS = {"tests", "test", "testing", "idlelib", "tkinter", "turtledemo", "lib2to3", "site-packages",
              "__pycache__", "_vendor", "vendored"}
MIN_DOC_WORDS = 8


@dataclass(frozen=True)
class Doc:
    id: str
    text: str


@dataclass(frozen=True)
class ChunkRef:
    id: str  # "<doc id>#<chunk index>"
    document_id: str
    text: str


def _pydoc_topics() -> Iterator[Doc]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield Doc(f"pydoc:{name}", topics[name])


def _docstrings(root: Path, prefix: str) -> Iterator[Doc]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        module = prefix + rel.with_suffix("").as_posix().replace("/", ".")
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc.split()) >= MIN_DOC_WORDS:
                    name = "" if isinstance(node, ast.Module) else f":{node.name}:{node.lineno}"
                    yield Doc(f"{module}{name}", doc)


def iter_documents() -> Iterator[Doc]:
    yield from _pydoc_topics()
    paths = sysconfig.get_paths()
    yield from _docstrings(Path(paths["stdlib"]), "")
    site = Path(paths["purelib"])
    for package in PACKAGES:
        if (site / package).is_dir():
            yield from _docstrings(site / package, f"{package}.")


def build_chunks(target: int, chunk_size: int = 800, overlap: int = 150,
                 documents: Iterator[Doc] | None = None) -> tuple[list[Doc], list[ChunkRef]]:
    """The first `target` distinct chunks of the corpus, with the documents they came from."""
    from semantic_text_splitter import TextSplitter

    splitter = TextSplitter(chunk_size, overlap=overlap)  # by characters: these chunks skip the agent's ingestion
    docs: list[Doc] = []
    chunks: list[ChunkRef] = []
    seen: set[str] = set()
    for doc in documents if documents is not None else iter_documents():
        kept = False
        for index, text in enumerate(splitter.chunks(normalise_text(doc.text))):
            if len(text) < 40 or text in seen:  # fragments and copies
                continue
            seen.add(text)
            chunks.append(ChunkRef(f"{doc.id}#{index}", doc.id, text))
            kept = True
            if len(chunks) >= target:
                break
        if kept:
            docs.append(doc)
        if len(chunks) >= target:
            break
    if len(chunks) < target:
        raise RuntimeError(f"the corpus sources on this machine give only {len(chunks)} distinct chunks, "
                           f"{target} needed; lower the sizes or install one of {', '.join(PACKAGES)}")
    return docs, chunks


# --- queries with known answers -------------------------------------------------------------------
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Query:
    text: str
    source_chunk: int  # index into the chunk list
    sentence: str  # the original sentence; every chunk containing it is relevant


def make_queries(chunks: list[ChunkRef], count: int, pool: int, seed: int = 7,
                 drop: float = 0.3) -> list[Query]:
    """Queries from sentences of the first `pool` chunks, paraphrased by dropping ~30% of the words.

    Drawing from the first `pool` chunks (the smallest benchmark size) keeps the same queries valid
    at every size, so larger indexes only add distractors.
    """
    rng = random.Random(seed)
    candidates = list(range(min(pool, len(chunks))))
    rng.shuffle(candidates)
    queries: list[Query] = []
    for index in candidates:
        sentences = [s.strip() for s in _SENTENCE.split(chunks[index].text.replace("\n", " "))
                     if 6 <= len(s.split()) <= 24 and not s.lstrip().startswith((">>>", "..."))]
        if not sentences:
            continue
        sentence = rng.choice(sentences)
        words = _WORD.findall(sentence)
        kept = [w for w in words if rng.random() >= drop]
        if len(kept) < 4:
            kept = words[: max(4, len(words) // 2)]
        queries.append(Query(" ".join(kept), index, sentence))
        if len(queries) >= count:
            break
    return queries


def relevant_chunks(queries: list[Query], chunks: list[ChunkRef]) -> list[set[int]]:
    """For each query, every chunk (index) whose text contains the query's original sentence.

    Chunks overlap by 150 characters, so a sentence can live in two neighbours; both count.
    """
    flat = [c.text.replace("\n", " ") for c in chunks]
    out = []
    for q in queries:
        found = {i for i, text in enumerate(flat) if q.sentence in text}
        found.add(q.source_chunk)
        out.append(found)
    return out
