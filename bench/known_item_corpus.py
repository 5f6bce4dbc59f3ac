"""Known-item corpora for judging retrieval per document: a held-out one and a tuning one.

Built ONCE from text on the machine (manual pages and Python standard-library modules) by
`python -m bench.known_item_corpus`, and committed under bench/data/ so every run judges the same
documents and questions. The procedure is fixed and was not tuned on the held-out results:

1. Candidates. Manual pages from /usr/share/man/man{1,5,7,8} (real files, not `.so` stubs),
   rendered to plain text by `man -l` at 80 columns; Python modules of the standard library with a
   module docstring (tests, idlelib, tkinter and other GUI/demo packages left out).
2. The question is the document's own one-line summary, and the summary is removed from the text:
   a manual page's NAME line ("gzip, gunzip, zcat - compress or expand files" gives the question
   "compress or expand files"; the NAME section is dropped), a module's first docstring line. So a
   question says what the document is for, in the words of its author, without being quoted in it:
   a known-item search ("which page is about ...?") that neither a lexical nor a dense retriever
   gets for free.
3. Filters: a summary of 3 to 20 words, not "manual page for ..." boilerplate, unique (a summary
   two documents share names neither); document text (after removal) of 1,500 to 12,000
   characters, and unique.
4. Split. Every candidate's place comes from sha256("known-item-v1:" + its path); the first byte's
   parity puts it in the held-out or the tuning corpus, and within each corpus candidates are taken
   in hash order until the family's quota is full (QUOTAS: varied families, and the ~16k
   near-identical `gcloud` pages capped so they do not dominate).

Held-out (bench/data/known-item-heldout.jsonl) is judged by `make bench` and must never be used to
choose or tune anything; tuning (bench/data/known-item-tuning.jsonl) is for trying ideas.
Rebuilding on another machine gives other documents (other installed packages), which is why the
built files are committed; on this machine it reproduces them byte for byte.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
CORPORA = ("heldout", "tuning")
SALT = "known-item-v1:"
MIN_CHARS, MAX_CHARS = 1_500, 12_000
MIN_WORDS, MAX_WORDS = 3, 20
SENTENCE_WORDS = (8, 30)
DOCUMENTS = 250  # per corpus
CLUSTER_CAP = 25  # pages taken from one cluster (tool suite, package)
FAMILY_CAPS = {"gcloud": 100, "python": 60}  # so neither the ~16k gcloud pages nor code dominate
FAMILIES = ("man1", "gcloud", "man5", "man7", "man8", "python")
MAN_ROOT = Path("/usr/share/man")
PY_SKIP = {"test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "site-packages", "__pycache__",
           "ensurepip", "venv"}
_NAME_HEADER = re.compile(r"^NAME\s*$", re.M)
_SECTION_HEADER = re.compile(r"^[A-Z][A-Z0-9 ,/&()-]*$")


@dataclass(frozen=True)
class Candidate:
    family: str
    path: Path
    key: str  # what the hash is taken of: stable across machines with the same files

    @property
    def digest(self) -> bytes:
        return hashlib.sha256((SALT + self.key).encode()).digest()


@dataclass(frozen=True)
class KnownItem:
    id: str
    family: str
    question: str | None  # None: a distractor (its question was ambiguous)
    text: str


def path_key(path: Path) -> str:
    """The path the hash is taken of; relative to the stdlib for modules, so Python's prefix does not matter."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return path.relative_to(stdlib).as_posix() if path.is_relative_to(stdlib) else path.as_posix()


def candidates() -> Iterator[Candidate]:
    for section in ("1", "5", "7", "8"):
        folder = MAN_ROOT / f"man{section}"
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_symlink() or not path.is_file():
                continue
            family = "gcloud" if section == "1" and path.name.startswith(("gcloud", "bq", "gsutil")) else f"man{section}"
            yield Candidate(family, path, path.as_posix())
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        if any(part in PY_SKIP or part.startswith(("config-", ".")) for part in rel.parts[:-1]):
            continue
        yield Candidate("python", path, path_key(path))


def render_man(path: Path) -> str | None:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if raw.lstrip().startswith(b".so "):  # a redirect to another page
        return None
    env = {**os.environ, "MANWIDTH": "80", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MAN_KEEP_FORMATTING": ""}
    try:
        out = subprocess.run(["man", "--no-hyphenation", "--no-justification", "-P", "cat", "-l", str(path)],
                             capture_output=True, env=env, timeout=30, check=False).stdout
        # Strip overstrike (bold/underline) sequences the formatter may still emit.
        text = subprocess.run(["col", "-bx"], input=out, capture_output=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return text.decode("utf-8", "replace")


def split_man(text: str) -> tuple[str, str] | None:
    """(summary, the page), or None when the page has no usable NAME line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _NAME_HEADER.match(line):
            break
    else:
        return None
    end = next((j for j in range(i + 1, len(lines)) if _SECTION_HEADER.match(lines[j]) and lines[j].strip()), None)
    if end is None:
        return None
    name = " ".join(" ".join(lines[i + 1:end]).split())
    if " - " not in name:
        return None
    return name.split(" - ", 1)[1].strip(), text


def split_module(path: Path) -> tuple[str, str] | None:
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return None
    doc = ast.get_docstring(tree, clean=False)
    if not doc or not doc.strip():
        return None
    return doc.strip().splitlines()[0].strip(), source


def clean_text(text: str) -> str:
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def usable(summary: str, text: str) -> bool:
    words = summary.split()
    return (MIN_WORDS <= len(words) <= MAX_WORDS and "manual page for" not in summary.lower()
            and MIN_CHARS <= len(text) <= MAX_CHARS and summary.isascii())


def cluster_of(cand: Candidate) -> str:
    """Pages of one tool suite or package form a cluster (git-*, systemd.*, gcloud compute instances,
    email.*): a corpus takes whole clusters, so a question must tell a page from its siblings."""
    if cand.family == "python":
        return "python/" + cand.key.split("/")[0].removesuffix(".py")
    name = cand.path.name
    if cand.family == "gcloud":
        parts = [p for p in name.split(".")[0].split("_") if p not in ("alpha", "beta")]
        return "_".join(parts[:3])
    return re.split(r"[-_.@]", name, maxsplit=1)[0]


def build() -> dict[str, list[KnownItem]]:
    clusters: dict[str, list[Candidate]] = {}
    for cand in candidates():
        clusters.setdefault(cluster_of(cand), []).append(cand)
    order = sorted(clusters, key=lambda c: hashlib.sha256((SALT + c).encode()).digest())
    corpora: dict[str, list[KnownItem]] = {name: [] for name in CORPORA}
    sources: dict[str, Candidate] = {}
    owner: dict[str, tuple[str, str] | None] = {}  # summary -> (corpus, id) holding it; None: banned
    seen_texts: set[str] = set()
    for cluster in order:
        corpus = CORPORA[hashlib.sha256((SALT + cluster).encode()).digest()[0] % 2]
        items = corpora[corpus]
        taken = 0
        for cand in sorted(clusters[cluster], key=lambda c: c.digest):
            if (len(items) >= DOCUMENTS or taken >= CLUSTER_CAP
                    or sum(d.family == cand.family for d in items) >= FAMILY_CAPS.get(cand.family, DOCUMENTS)):
                break
            split = split_module(cand.path) if cand.family == "python" else _man(cand.path)
            if split is None:
                continue
            summary, text = split[0].strip(), clean_text(split[1])
            if not usable(summary, text) or text in seen_texts:
                continue
            if not any(eligible(x) for x in sentences(cand, text)):
                continue
            norm = " ".join(summary.lower().rstrip(".").split())
            if norm in owner:
                # A summary two documents share names neither: drop the one taken earlier too.
                held = owner[norm]
                if held is not None:
                    corpora[held[0]][:] = [d for d in corpora[held[0]] if d.id != held[1]]
                    owner[norm] = None
                continue
            item = KnownItem(document_id(cand), cand.family, None, text)
            sources[item.id] = cand
            owner[norm] = (corpus, item.id)
            seen_texts.add(text)
            items.append(item)
            taken += 1
        if all(len(corpora[name]) >= DOCUMENTS for name in CORPORA):
            break
    return {name: ask(items, sources) for name, items in corpora.items()}


def _flat(text: str) -> str:
    return " ".join(text.split()).lower()


def ask(items: list[KnownItem], sources: dict[str, Candidate]) -> list[KnownItem]:
    """One question per document (inverse cloze): a sentence drawn with the document's own seed
    that no other document of the corpus holds, cut out of its document wherever its words sit
    (across line wraps and indentation). A document with no such sentence stays as a distractor."""
    flat = [_flat(d.text) for d in items]
    out = []
    for i, d in enumerate(items):
        cand = sources[d.id]
        pool = list(dict.fromkeys(x for x in sentences(cand, d.text) if eligible(x)))
        random.Random(cand.digest).shuffle(pool)
        asked = KnownItem(d.id, d.family, None, d.text)
        for sentence in pool:
            q = _flat(sentence)
            if any(q in other for j, other in enumerate(flat) if j != i):
                continue
            pattern = re.compile(r"\s+".join(re.escape(w) for w in sentence.split()))
            if len(pattern.findall(d.text)) == 1:
                asked = KnownItem(d.id, d.family, sentence, clean_text(pattern.sub("", d.text, count=1)))
                break
        out.append(asked)
    return out


_SENTENCE_END = re.compile(r"(?<=[a-z0-9)][.!?])\s+(?=[A-Z])")


def sentences(cand: Candidate, text: str) -> list[str]:
    """Prose sentences of a document: a page's paragraphs, a module's docstrings; one line each."""
    if cand.family == "python":
        try:
            tree = ast.parse(text)
        except SyntaxError:
            return []
        blocks = [ast.get_docstring(node) or "" for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        paragraphs = [p for block in blocks for p in block.split("\n\n")]
    else:
        # A block ends at a blank line or where the indentation changes (a heading, an option).
        paragraphs, block, indent = [], [], None
        for line in text.splitlines():
            width = len(line) - len(line.lstrip())
            if not line.strip() or width != indent:
                paragraphs.append("\n".join(block))
                block = []
            if line.strip():
                block.append(line)
            indent = width if line.strip() else None
        paragraphs.append("\n".join(block))
    out = []
    for paragraph in paragraphs:
        out += _SENTENCE_END.split(" ".join(paragraph.split()))
    return out


def eligible(sentence: str) -> bool:
    words = sentence.split()
    alpha = sum(w.strip(".,;:()'\"").isalpha() for w in words)
    return (SENTENCE_WORDS[0] <= len(words) <= SENTENCE_WORDS[1] and sentence.endswith(".")
            and sentence[0].isupper() and alpha >= 0.8 * len(words) and sentence.isascii()
            and not any(w.endswith("-") for w in words))  # a word hyphenated across a line wrap


def _man(path: Path) -> tuple[str, str] | None:
    text = render_man(path)
    return None if text is None else split_man(text)


def document_id(cand: Candidate) -> str:
    if cand.family == "python":
        return "python/" + cand.key.removesuffix(".py")
    name = cand.path.name.removesuffix(".gz")
    return f"{cand.path.parent.name}/{name}"


def corpus_path(name: str, data_dir: Path = DATA_DIR) -> Path:
    return data_dir / f"known-item-{name}.jsonl"


def write(corpora: dict[str, list[KnownItem]], data_dir: Path = DATA_DIR) -> list[Path]:
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, items in corpora.items():
        path = corpus_path(name, data_dir)
        lines = [json.dumps({"id": d.id, "family": d.family, "question": d.question, "text": d.text},
                            ensure_ascii=False, sort_keys=True) for d in sorted(items, key=lambda d: d.id)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def load(name: str, data_dir: Path = DATA_DIR) -> list[KnownItem]:
    """The committed corpus `name` ("heldout" or "tuning"): one document and its question per line."""
    if name not in CORPORA:
        raise ValueError(f"unknown known-item corpus {name!r}; use one of {', '.join(CORPORA)}")
    path = corpus_path(name, data_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; rebuild it with `python -m bench.known_item_corpus`")
    with path.open(encoding="utf-8") as f:
        return [KnownItem(**{k: row[k] for k in ("id", "family", "question", "text")})
                for row in map(json.loads, filter(str.strip, f))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.known_item_corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DATA_DIR, help="where the JSONL files go (default bench/data)")
    args = p.parse_args(argv)
    corpora = build()
    for name, items in corpora.items():
        families = {f: sum(d.family == f for d in items) for f in FAMILIES}
        print(f"{name}: {len(items)} documents {families}", file=sys.stderr)
        if len(items) < DOCUMENTS:
            print(f"warning: {name} has fewer than {DOCUMENTS} documents (other packages installed?)",
                  file=sys.stderr)
    for path in write(corpora, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
