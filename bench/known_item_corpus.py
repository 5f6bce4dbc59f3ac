"""Known-item corpora for judging retrieval per document: a held-out one and a tuning one.

Built ONCE from text on the machine (manual pages and Python standard-library modules) by
`python -m bench.known_item_corpus`, and committed under bench/data/ so every run judges the same
documents and questions. The procedure is fixed; it was settled on the tuning corpus alone (three
drafts were too easy: the baseline found 91-98% in its top 5, leaving no room to measure a gain)
and was never adjusted after looking at held-out results.

1. Candidates. Manual pages from /usr/share/man/man{1,5,7,8} (real files, not `.so` stubs),
   rendered to plain text by `man -l` at 80 columns; Python standard-library modules (source
   text) with a module docstring (tests, idlelib, tkinter and other GUI/demo packages left out).
   A page needs a NAME line, a module a docstring (its summary: 3 to 20 words, not "manual page
   for ..."), and the text 1,500 to 12,000 characters.
2. Suites. Candidates are grouped by suite (git-*, systemd.*, one gcloud command group, one
   Python package, ...); only suites of at least CLUSTER_MIN candidates count, so every document
   has siblings it must be told apart from. Suites are taken whole (up to CLUSTER_CAP pages) in the
   order of sha256("known-item-v1:" + suite); the first byte's parity sends a suite to the held-out
   or the tuning corpus, so the two share no suite and no text. gcloud pages are capped (FAMILY_CAPS)
   so the ~16k of them do not fill a corpus; documents whose one-line summary (NAME line, first
   docstring line) or text repeats another's are dropped (gcloud alpha/beta/GA copies).
3. Questions (inverse cloze, Lee et al. 2019). For each document, its prose sentences of 6 to 12
   words (ASCII, mostly words, ending in a full stop) are shuffled with a seed taken from the
   document's hash; the first one that no other document of the corpus contains becomes its
   question, and the whole paragraph holding it is cut out of the document (wherever its words sit,
   across line wraps and indentation). Neither the sentence nor its immediate context is left to
   match: the rest of the document has to be recognised as its source. A document without such a
   sentence stays in the corpus as a distractor with no question.

Held-out (bench/data/known-item-heldout.jsonl) is judged by `make bench` and must never be used to
choose or tune anything; tuning (bench/data/known-item-tuning.jsonl) is for trying ideas.

A second development corpus (bench/data/known-item-development.jsonl, `--profile development`) is
built by the same procedure from other text: manual pages of sections 2 and 3 (system calls, C
library) and the modules of the installed third-party packages (site-packages), so it shares no
suite and no text with the two above. A change to ranking is kept only if it helps on both tuning
and development: a gain that holds on two unrelated corpora is more likely to hold on held-out.
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
DEVELOPMENT = "development"  # the second development corpus (other sources, see the docstring)
SALT = "known-item-v1:"
MIN_CHARS, MAX_CHARS = 1_500, 12_000
MIN_WORDS, MAX_WORDS = 3, 20
SENTENCE_WORDS = (6, 12)
DOCUMENTS = 250  # per corpus
CLUSTER_CAP = 40  # pages taken from one cluster (tool suite, package)
CLUSTER_MIN = 5  # only suites with at least this many candidate pages: every document has siblings
FAMILY_CAPS = {"gcloud": 110, "python": 60}  # so neither the ~16k gcloud pages nor code dominate
FAMILIES = ("man1", "gcloud", "man5", "man7", "man8", "python")
DEV_FAMILIES = ("man2", "man3", "pysite")
DEV_FAMILY_CAPS = {"pysite": 150}  # man2 and man3 give ~110 pages in suites; third-party modules fill the rest
MAN_ROOT = Path("/usr/share/man")
PY_SKIP = {"test", "tests", "_vendor", "vendor", "idlelib", "tkinter", "turtledemo", "lib2to3", "site-packages", "__pycache__",
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
    """The path the hash is taken of; relative to the stdlib (or site-packages) for modules, so
    Python's prefix does not matter."""
    for root in (Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["stdlib"])):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.as_posix()


def candidates() -> Iterator[Candidate]:
    yield from man_candidates(("1", "5", "7", "8"))
    yield from module_candidates("python", Path(sysconfig.get_paths()["stdlib"]))


def dev_candidates() -> Iterator[Candidate]:
    """The development corpus's sources: man2, man3 and third-party modules, none of them above."""
    yield from man_candidates(("2", "3"))
    yield from module_candidates("pysite", Path(sysconfig.get_paths()["purelib"]))


def man_candidates(sections: tuple[str, ...]) -> Iterator[Candidate]:
    for section in sections:
        folder = MAN_ROOT / f"man{section}"
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_symlink() or not path.is_file():
                continue
            family = "gcloud" if section == "1" and path.name.startswith(("gcloud", "bq", "gsutil")) else f"man{section}"
            yield Candidate(family, path, path.as_posix())


def module_candidates(family: str, root: Path) -> Iterator[Candidate]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in PY_SKIP or part.startswith(("config-", ".")) or part.endswith(".dist-info")
               for part in rel.parts[:-1]):
            continue
        yield Candidate(family, path, path_key(path))


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
    """The suite a candidate belongs to (git-*, systemd.*, gcloud compute instances, email.*)."""
    if cand.family in ("python", "pysite"):
        return f"{cand.family}/" + cand.key.split("/")[0].removesuffix(".py")
    name = cand.path.name
    if cand.family == "gcloud":
        parts = [p for p in name.split(".")[0].split("_") if p not in ("alpha", "beta")]
        return "_".join(parts[:3])
    return re.split(r"[-_.@]", name, maxsplit=1)[0]


def build(profile: str = "main") -> dict[str, list[KnownItem]]:
    """The corpora of one profile: "main" (held-out and tuning), or "development"."""
    if profile == "main":
        names, found, caps = CORPORA, candidates(), FAMILY_CAPS
    elif profile == DEVELOPMENT:
        names, found, caps = (DEVELOPMENT,), dev_candidates(), DEV_FAMILY_CAPS
    else:
        raise ValueError(f"unknown profile {profile!r}; use main or {DEVELOPMENT}")
    clusters: dict[str, list[Candidate]] = {}
    for cand in found:
        clusters.setdefault(cluster_of(cand), []).append(cand)
    order = sorted(clusters, key=lambda c: hashlib.sha256((SALT + c).encode()).digest())
    corpora: dict[str, list[KnownItem]] = {name: [] for name in names}
    sources: dict[str, Candidate] = {}
    owner: dict[str, tuple[str, str] | None] = {}  # summary -> (corpus, id) holding it; None: banned
    seen_texts: set[str] = set()
    for cluster in order:
        if len(clusters[cluster]) < CLUSTER_MIN:
            continue
        corpus = names[hashlib.sha256((SALT + cluster).encode()).digest()[0] % len(names)]
        items = corpora[corpus]
        taken = 0
        for cand in sorted(clusters[cluster], key=lambda c: c.digest):
            if (len(items) >= DOCUMENTS or taken >= CLUSTER_CAP
                    or sum(d.family == cand.family for d in items) >= caps.get(cand.family, DOCUMENTS)):
                break
            split = split_module(cand.path) if cand.family in ("python", "pysite") else _man(cand.path)
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
        if all(len(corpora[name]) >= DOCUMENTS for name in names):
            break
    return {name: ask(items, sources) for name, items in corpora.items()}


def _flat(text: str) -> str:
    return " ".join(text.split()).lower()


def ask(items: list[KnownItem], sources: dict[str, Candidate]) -> list[KnownItem]:
    """One question per document (inverse cloze): a sentence drawn with the document's own seed
    that no other document of the corpus holds, and its whole paragraph cut out of the document
    wherever its words sit (across line wraps and indentation), so neither the sentence nor its
    immediate context is left to match: the rest of the document must be recognised as its source.
    A document with no such sentence stays as a distractor."""
    flat = [_flat(d.text) for d in items]
    out = []
    for i, d in enumerate(items):
        cand = sources[d.id]
        pool = list(dict.fromkeys((x, para) for para in paragraphs(cand, d.text)
                                  for x in split_sentences(para) if eligible(x)))
        random.Random(cand.digest).shuffle(pool)
        asked = KnownItem(d.id, d.family, None, d.text)
        for sentence, paragraph in pool:
            q = _flat(sentence)
            if any(q in other for j, other in enumerate(flat) if j != i):
                continue
            pattern = _loose(paragraph)
            if len(pattern.findall(d.text)) == 1:
                rest = clean_text(pattern.sub("", d.text, count=1))
                if len(rest) >= MIN_CHARS and q not in _flat(rest):  # not quoted twice in its page
                    asked = KnownItem(d.id, d.family, sentence, rest)
                    break
        out.append(asked)
    return out


def _loose(text: str) -> re.Pattern[str]:
    """`text`'s words with any whitespace between them: matches it across line wraps and indentation."""
    return re.compile(r"\s+".join(re.escape(w) for w in text.split()))


_SENTENCE_END = re.compile(r"(?<=[a-z0-9)][.!?])\s+(?=[A-Z])")


def split_sentences(paragraph: str) -> list[str]:
    return _SENTENCE_END.split(paragraph)


def paragraphs(cand: Candidate, text: str) -> list[str]:
    """Prose paragraphs of a document, one line each: a page's text blocks, a module's docstrings."""
    if cand.family in ("python", "pysite"):
        try:
            tree = ast.parse(text)
        except SyntaxError:
            return []
        blocks = [ast.get_docstring(node) or "" for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        found = [p for block in blocks for p in block.split("\n\n")]
    else:
        # A block ends at a blank line or where the indentation changes (a heading, an option).
        found, block, indent = [], [], None
        for line in text.splitlines():
            width = len(line) - len(line.lstrip())
            if not line.strip() or width != indent:
                found.append("\n".join(block))
                block = []
            if line.strip():
                block.append(line)
            indent = width if line.strip() else None
        found.append("\n".join(block))
    return [" ".join(p.split()) for p in found if p.strip()]


def sentences(cand: Candidate, text: str) -> list[str]:
    return [x for para in paragraphs(cand, text) for x in split_sentences(para)]


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
    if cand.family in ("python", "pysite"):
        return f"{cand.family}/" + cand.key.removesuffix(".py")
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
    """The committed corpus `name` ("heldout", "tuning" or "development"): one document and its
    question per line."""
    if name not in (*CORPORA, DEVELOPMENT):
        raise ValueError(f"unknown known-item corpus {name!r}; use one of {', '.join((*CORPORA, DEVELOPMENT))}")
    path = corpus_path(name, data_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; rebuild it with `python -m bench.known_item_corpus`")
    with path.open(encoding="utf-8") as f:
        return [KnownItem(**{k: row[k] for k in ("id", "family", "question", "text")})
                for row in map(json.loads, filter(str.strip, f))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.known_item_corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DATA_DIR, help="where the JSONL files go (default bench/data)")
    p.add_argument("--profile", choices=("main", DEVELOPMENT), default="main",
                   help="main: the held-out and tuning corpora; development: the second development corpus")
    args = p.parse_args(argv)
    corpora = build(args.profile)
    for name, items in corpora.items():
        families = {f: sum(d.family == f for d in items) for f in (*FAMILIES, *DEV_FAMILIES)}
        print(f"{name}: {len(items)} documents {families}", file=sys.stderr)
        if len(items) < DOCUMENTS:
            print(f"warning: {name} has fewer than {DOCUMENTS} documents (other packages installed?)",
                  file=sys.stderr)
    for path in write(corpora, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
