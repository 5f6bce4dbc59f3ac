"""The evaluation dataset (questions) and the corpus (documents), loaded and validated.

Errors are `InputError`s that name the file, the line and the field, so a broken golden set fails
the gate with exit code 2 and a message that says exactly what to fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MARKDOWN_SUFFIXES = {".md", ".markdown"}
TEXT_SUFFIXES = {".txt", ".rst", ".text"}


class InputError(Exception):
    """Bad input for the gate (dataset, corpus, gate file, flags): exit code 2."""


class Question(BaseModel):
    """One dataset line."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    question: str = Field(min_length=1, max_length=2000)
    relevant_document_ids: list[str] = Field(min_length=1)
    reference_answer: str | None = None

    @field_validator("relevant_document_ids")
    @classmethod
    def _ids_non_empty(cls, ids: list[str]) -> list[str]:
        cleaned = [i.strip() for i in ids]
        if any(not i for i in cleaned):
            raise ValueError("ids must be non-empty strings")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("ids must be unique")
        return cleaned


@dataclass(frozen=True)
class DatasetItem:
    line: int
    question: Question


class Document(BaseModel):
    """One corpus document, in the shape POST /documents takes."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=512)
    text: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    title: str | None = None


def _describe(error: ValidationError) -> str:
    parts = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(line)"
        parts.append(f"field '{loc}': {err['msg']}")
    return "; ".join(parts)


def _read_jsonl(path: Path) -> list[tuple[int, Any]]:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    rows = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    return rows


def load_dataset(path: Path) -> list[DatasetItem]:
    """Read and validate a dataset JSONL file: one question object per line."""
    items = []
    for number, obj in _read_jsonl(path):
        if not isinstance(obj, dict):
            raise InputError(f"{path}:{number}: expected a JSON object with 'question' and "
                             f"'relevant_document_ids', got {type(obj).__name__}")
        try:
            items.append(DatasetItem(number, Question.model_validate(obj)))
        except ValidationError as exc:
            raise InputError(f"{path}:{number}: {_describe(exc)}") from None
    if not items:
        raise InputError(f"{path}: the dataset has no questions")
    return items


# --- corpus ---------------------------------------------------------------------------------------

def slugify(heading: str) -> str:
    """GitHub-style anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*|_{2,}", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@dataclass
class _Section:
    heading: str | None
    lines: list[str] = field(default_factory=list)


_FENCE = re.compile(r"^\s*(```|~~~)")


def split_markdown(text: str, doc_path: str) -> list[Document]:
    """Split a markdown page into one document per `## ` section.

    Ids are `<doc_path>#<heading-slug>` (GitHub anchors, `-1`, `-2` for repeats); text before the
    first `## ` heading becomes `<doc_path>` when it has more than the page title. Headings inside
    code fences are not headings. Each section's text starts with the page title and the heading,
    so a section is findable by the topic of its page.
    """
    title = None
    sections = [_Section(None)]
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and line.startswith("## "):
            sections.append(_Section(line[3:].strip()))
            continue
        if not in_fence and title is None and line.startswith("# "):
            title = line[2:].strip()
        sections[-1].lines.append(line)

    docs: list[Document] = []
    used: dict[str, int] = {}
    for section in sections:
        body = "\n".join(section.lines).strip()
        if section.heading is None:
            intro = "\n".join(l for l in section.lines if not l.startswith("# ")).strip()
            if intro:
                docs.append(Document(id=doc_path, text=body, metadata={"source": doc_path}))
            continue
        slug = slugify(section.heading)
        count = used.get(slug, 0)
        used[slug] = count + 1
        anchor = slug if count == 0 else f"{slug}-{count}"
        header = f"{title} — {section.heading}" if title else section.heading
        docs.append(Document(id=f"{doc_path}#{anchor}", text=f"{header}\n\n{body}".strip(), title=header,
                             metadata={"source": doc_path, "section": section.heading}))
    return docs


def _load_corpus_jsonl(path: Path) -> list[Document]:
    docs = []
    for number, obj in _read_jsonl(path):
        if not isinstance(obj, dict):
            raise InputError(f"{path}:{number}: expected a JSON object with 'id' and 'text'")
        try:
            docs.append(Document.model_validate(obj))
        except ValidationError as exc:
            raise InputError(f"{path}:{number}: {_describe(exc)}") from None
    return docs


def _load_text_file(path: Path, doc_path: str) -> list[Document]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as UTF-8 text ({exc})") from None
    if path.suffix.lower() in MARKDOWN_SUFFIXES:
        return split_markdown(text, doc_path)
    return [Document(id=doc_path, text=text, metadata={"source": doc_path})] if text.strip() else []


def load_corpus(paths: list[Path]) -> list[Document]:
    """Documents from each --corpus path: JSONL, a text/markdown file, or a directory of them.

    File ids are paths relative to the parent of the given path (`--corpus docs` gives
    `docs/agent.md#...`), so ids do not depend on the working directory.
    """
    docs: list[Document] = []
    for path in paths:
        if not path.exists():
            raise InputError(f"--corpus {path}: no such file or directory")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in MARKDOWN_SUFFIXES | TEXT_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                raise InputError(f"--corpus {path}: the directory has no .md/.markdown/.txt/.rst files")
            for file in files:
                docs.extend(_load_text_file(file, file.relative_to(path.parent).as_posix()))
        elif path.suffix.lower() == ".jsonl":
            docs.extend(_load_corpus_jsonl(path))
        else:
            docs.extend(_load_text_file(path, path.name))
    seen: dict[str, int] = {}
    for doc in docs:
        seen[doc.id] = seen.get(doc.id, 0) + 1
    duplicates = sorted(i for i, n in seen.items() if n > 1)
    if duplicates:
        raise InputError(f"corpus: duplicate document ids {duplicates[:5]}; ids must be unique "
                         "(two headings with the same text in one file get -1, -2 suffixes)")
    if not docs:
        raise InputError("corpus: no documents found in " + ", ".join(str(p) for p in paths))
    return docs


def unknown_relevant_ids(items: list[DatasetItem], corpus_ids: set[str]) -> list[tuple[int, str]]:
    """(line, id) for every relevant id the corpus does not contain: such a question cannot pass."""
    return [(item.line, doc_id) for item in items for doc_id in item.question.relevant_document_ids
            if doc_id not in corpus_ids]
