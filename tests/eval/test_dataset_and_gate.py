"""Dataset, corpus and gate-file validation: every error names the file, line and field."""

import json
from pathlib import Path

import pytest

from agent.eval import gate as g
from agent.eval.dataset import InputError, load_corpus, load_dataset, slugify, split_markdown


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_dataset_keeps_line_numbers(tmp_path):
    path = write(tmp_path / "q.jsonl", '{"question": "a?", "relevant_document_ids": ["x"]}\n\n'
                                       '{"question": "b?", "relevant_document_ids": ["y", "z"], '
                                       '"reference_answer": "b"}\n')
    items = load_dataset(path)
    assert [i.line for i in items] == [1, 3]
    assert items[1].question.relevant_document_ids == ["y", "z"]


@pytest.mark.parametrize("line, expected", [
    ('{"question": "a?"}', "q.jsonl:2: field 'relevant_document_ids': Field required"),
    ('{"question": "", "relevant_document_ids": ["x"]}', "q.jsonl:2: field 'question'"),
    ('{"question": "a?", "relevant_document_ids": []}', "q.jsonl:2: field 'relevant_document_ids'"),
    ('{"question": "a?", "relevant_document_ids": ["x", "x"]}', "ids must be unique"),
    ('{"question": "a?", "relevant_document_ids": ["x"], "answer": "typo"}', "field 'answer': Extra inputs"),
    ('{"question": "a?", ', "q.jsonl:2: not valid JSON"),
    ('["a?"]', "q.jsonl:2: expected a JSON object"),
])
def test_invalid_dataset_lines_are_named(tmp_path, line, expected):
    path = write(tmp_path / "q.jsonl", '{"question": "ok?", "relevant_document_ids": ["x"]}\n' + line + "\n")
    with pytest.raises(InputError) as err:
        load_dataset(path)
    assert expected in str(err.value)


def test_missing_and_empty_dataset(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="no questions"):
        load_dataset(write(tmp_path / "empty.jsonl", "\n"))


def test_slugify_like_github_anchors():
    assert slugify("Exit codes") == "exit-codes"
    assert slugify("The `--gate` file (per env)") == "the---gate-file-per-env"
    assert slugify("Redis: sessions & TTL") == "redis-sessions--ttl"


def test_markdown_sections_become_documents():
    text = ("# Guide\n\nIntro text.\n\n## Run it\n\nDo this.\n\n```sh\n## not a heading\n```\n\n"
            "### Detail\n\nMore.\n\n## Run it\n\nAgain.\n")
    docs = split_markdown(text, "docs/guide.md")
    assert [d.id for d in docs] == ["docs/guide.md", "docs/guide.md#run-it", "docs/guide.md#run-it-1"]
    assert docs[1].text.startswith("Guide — Run it")
    assert "## not a heading" in docs[1].text and "### Detail" in docs[1].text
    assert docs[1].metadata == {"source": "docs/guide.md", "section": "Run it"}
    # a page with only a title and sections has no intro document
    assert [d.id for d in split_markdown("# T\n\n## A\n\nx\n", "t.md")] == ["t.md#a"]


def test_corpus_ids_are_relative_to_the_given_path_parent(tmp_path, monkeypatch):
    docs_dir = tmp_path / "docs"
    (docs_dir / "sub").mkdir(parents=True)
    write(docs_dir / "a.md", "# A\n\n## One\n\ntext one\n")
    write(docs_dir / "sub" / "b.txt", "plain text")
    write(docs_dir / "image.png", "not text")
    write(tmp_path / "README.md", "# R\n\nreadme intro\n")
    write(tmp_path / "c.jsonl", json.dumps({"id": "c1", "text": "json doc"}) + "\n")
    monkeypatch.chdir(tmp_path.parent)  # ids must not depend on the working directory
    docs = load_corpus([docs_dir, tmp_path / "README.md", tmp_path / "c.jsonl"])
    assert [d.id for d in docs] == ["docs/a.md#one", "docs/sub/b.txt", "README.md", "c1"]


def test_corpus_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_corpus([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no .md"):
        load_corpus([tmp_path / "empty"])
    bad = write(tmp_path / "bad.jsonl", '{"id": "a", "text": "x"}\n{"id": "b"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'text'"):
        load_corpus([bad])
    dup = write(tmp_path / "dup.jsonl", '{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    with pytest.raises(InputError, match="duplicate document ids"):
        load_corpus([dup])


def test_gate_file_validation(tmp_path):
    ok = write(tmp_path / "dev.json", json.dumps({"k": 3, "thresholds": {"min_hit_at_k": 0.5}}))
    assert g.load_gate(ok).k == 3
    typo = write(tmp_path / "typo.json", json.dumps({"thresholds": {"min_hit_at_5": 0.5}}))
    with pytest.raises(InputError, match=r"field 'thresholds.min_hit_at_5': Extra inputs.*allowed thresholds"):
        g.load_gate(typo)
    out_of_range = write(tmp_path / "range.json", json.dumps({"thresholds": {"min_mrr": 1.5}}))
    with pytest.raises(InputError, match="thresholds.min_mrr"):
        g.load_gate(out_of_range)
    with pytest.raises(InputError, match="not valid JSON"):
        g.load_gate(write(tmp_path / "broken.json", "{"))
    with pytest.raises(InputError, match="file not found"):
        g.load_gate(tmp_path / "none.json")


def test_every_threshold_has_a_spec_and_a_field():
    assert set(g.GateThresholds.model_fields) == set(g.SPECS)


@pytest.mark.parametrize("spec", g.THRESHOLDS, ids=lambda spec: spec.name)
def test_each_thresholds_range_is_its_specs(spec, tmp_path):
    # The gate file's schema is built from THRESHOLDS: shares are 0-1, milliseconds above 0.
    share = spec.name.startswith("min_")
    assert (spec.ge, spec.le, spec.gt) == ((0, 1, None) if share else (None, None, 0))
    for good in ([0.0, 1.0] if share else [0.5, 60_000.0]):
        assert g.GateThresholds.model_validate({spec.name: good}).model_dump()[spec.name] == good
    for bad in ([-0.01, 1.01] if share else [0.0, -5.0]):
        gate = write(tmp_path / "gate.json", json.dumps({"thresholds": {spec.name: bad}}))
        with pytest.raises(InputError, match=rf"field 'thresholds\.{spec.name}': Input should be .*allowed thresholds"):
            g.load_gate(gate)
        with pytest.raises(InputError, match="--" + spec.name.replace("_", "-") + ": Input should be"):
            g.merge_thresholds(None, {spec.name: bad})


def test_flags_override_gate_and_checks_compare_in_the_right_direction():
    gate = g.GateFile(k=5, thresholds=g.GateThresholds(min_hit_at_k=0.9, min_mrr=0.5, max_latency_p95_ms=100))
    merged = g.merge_thresholds(gate, {"min_hit_at_k": 0.7, "min_answer_support": 0.8, "min_mrr": None})
    assert [(t.name, t.value, t.source) for t in merged] == [
        ("min_hit_at_k", 0.7, "flag"), ("min_mrr", 0.5, "gate"),
        ("min_answer_support", 0.8, "flag"), ("max_latency_p95_ms", 100.0, "gate")]
    metrics = {"hit_at_k": 0.7, "mrr": 0.49, "answer_support": None, "latency_ms": {"chat": {"p95": 99.0}}}
    results = {r["name"]: r for r in g.check(merged, metrics)}
    assert results["min_hit_at_k"]["passed"] is True            # equal to the floor passes
    assert results["min_mrr"]["passed"] is False
    assert results["min_answer_support"]["passed"] is False      # not measured -> fails
    assert results["min_answer_support"]["note"] == "metric not measured"
    assert results["max_latency_p95_ms"]["passed"] is True
    with pytest.raises(InputError, match="--min-hit-at-k"):
        g.merge_thresholds(None, {"min_hit_at_k": 2.0})
