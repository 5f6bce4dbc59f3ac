"""The off-the-shelf hybrid retriever the agent must beat, written as a user would write it.

BM25 over whole documents (bm25s, its README's English stop words and Snowball stemmer), dense
all-MiniLM-L6-v2 (sentence-transformers, the same weights as the agent) over 800-character chunks
with each document scored by its best chunk, and the two document rankings fused by reciprocal
rank (k = 60). No project code is used, on purpose: this is the 60-line script the agent's own
retrieval has to be worth more than.
"""

from __future__ import annotations

import numpy as np

RRF_K = 60
CHUNK_CHARS, CHUNK_OVERLAP = 800, 150


def chunks_of(text: str, size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP) -> list[str]:
    step = size - overlap
    return [text[i:i + size] for i in range(0, max(len(text) - overlap, 1), step)]


class OffTheShelfHybrid:
    def __init__(self, doc_ids: list[str], texts: list[str], model_path: str) -> None:
        import bm25s
        import Stemmer
        from sentence_transformers import SentenceTransformer

        self.doc_ids = doc_ids
        self.stemmer = Stemmer.Stemmer("english")
        self.bm25 = bm25s.BM25()
        self.bm25.index(bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer, show_progress=False),
                        show_progress=False)
        self.model = SentenceTransformer(model_path, device="cpu")
        self.chunk_doc: list[int] = []
        chunk_texts: list[str] = []
        for d, text in enumerate(texts):
            for chunk in chunks_of(text):
                chunk_texts.append(chunk)
                self.chunk_doc.append(d)
        self.chunk_vectors = self.model.encode(chunk_texts, batch_size=32, normalize_embeddings=True)
        self.chunk_doc_arr = np.array(self.chunk_doc)

    def bm25_ranking(self, query: str, k: int) -> list[str]:
        import bm25s

        tokens = bm25s.tokenize([query], stopwords="en", stemmer=self.stemmer, show_progress=False)
        docs, _ = self.bm25.retrieve(tokens, k=min(k, len(self.doc_ids)), show_progress=False)
        return [self.doc_ids[i] for i in docs[0]]

    def dense_ranking(self, query: str, k: int) -> list[str]:
        q = self.model.encode([query], normalize_embeddings=True)[0]
        scores = self.chunk_vectors @ q
        best = np.full(len(self.doc_ids), -np.inf)
        np.maximum.at(best, self.chunk_doc_arr, scores)  # a document scores as its best chunk
        return [self.doc_ids[i] for i in np.argsort(-best, kind="stable")[:k]]

    def search(self, query: str, k: int = 10, depth: int = 100) -> dict[str, list[str]]:
        """Document rankings: BM25, dense, and the two fused by RRF."""
        lists = {"bm25": self.bm25_ranking(query, depth), "dense": self.dense_ranking(query, depth)}
        fused: dict[str, float] = {}
        for ranking in lists.values():
            for rank, doc in enumerate(ranking, start=1):
                fused[doc] = fused.get(doc, 0.0) + 1.0 / (RRF_K + rank)
        lists["hybrid"] = sorted(fused, key=lambda d: -fused[d])
        return {name: ranking[:k] for name, ranking in lists.items()}
