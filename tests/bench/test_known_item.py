"""The known-item benchmark: the committed corpora keep their promises, the question procedure does
what docs/benchmarks.md says, scoring and wins/losses are right, and the whole path runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import known_item
from bench.common import RunContext, Sizes
import bench.known_item_corpus as kic
from bench.known_item_corpus import Candidate, KnownItem, ask, eligible, load


def _flat(text: str) -> str:
    return " ".join(text.split()).lower()


@pytest.mark.parametrize("name", ["heldout", "tuning", "development"])
def test_committed_corpus_holds_its_questions_nowhere(name: str) -> None:
    items = load(name)
    assert len(items) == 250 and len({d.id for d in items}) == 250
    asked = [d for d in items if d.question]
    assert len(asked) >= 150
    flat = [_flat(d.text) for d in items]
    for d in asked:
        assert eligible(d.question), d.id
        # The inverse cloze promise: the question is in no document, its own included.
        assert not any(_flat(d.question) in text for text in flat), d.id


def test_heldout_and_tuning_share_no_document_and_no_suite() -> None:
    held, tune = load("heldout"), load("tuning")
    assert not {d.id for d in held} & {d.id for d in tune}
    assert not {d.text for d in held} & {d.text for d in tune}


def test_the_development_corpus_comes_from_other_sources_than_heldout_and_tuning() -> None:
    dev = load("development")
    assert {d.family for d in dev} <= set(kic.DEV_FAMILIES)  # man2, man3, third-party modules
    others = load("heldout") + load("tuning")
    assert not {d.family for d in others} & set(kic.DEV_FAMILIES)
    assert not {d.id for d in dev} & {d.id for d in others}
    flat_others = {_flat(d.text) for d in others}
    assert not {_flat(d.text) for d in dev} & flat_others


def test_the_builder_keeps_profiles_apart_and_refuses_unknown_ones() -> None:
    assert {c.family for c in kic.dev_candidates()} <= set(kic.DEV_FAMILIES)
    with pytest.raises(ValueError, match="unknown profile 'heldout'"):
        kic.build("heldout")
    with pytest.raises(ValueError, match="unknown known-item corpus 'nope'.*development"):
        load("nope")


def test_ask_cuts_the_whole_paragraph_and_skips_sentences_another_document_holds(tmp_path: Path, monkeypatch) -> None:
    shared = "The daemon reloads its configuration when it receives a hangup signal."
    page_a = ("NAME\n       toola - does a\n\nDESCRIPTION\n       Toola reads every file in the spool directory\n"
              "       once a minute. It never deletes a file it could not parse.\n\n       " + shared
              + "\n\n       Other text stays in the document for as long as it is needed.\n")
    page_b = "DESCRIPTION\n       " + shared + "\n\n       Toolb is the other tool in this small suite.\n"
    cands = {"man1/toola.1": Candidate("man1", tmp_path / "toola.1", "a"),
             "man1/toolb.1": Candidate("man1", tmp_path / "toolb.1", "b")}
    items = [KnownItem("man1/toola.1", "man1", None, page_a), KnownItem("man1/toolb.1", "man1", None, page_b)]
    monkeypatch.setattr(kic, "MIN_CHARS", 10)  # these pages are far shorter than real ones
    out = ask(items, cands)
    assert out == ask(items, cands)  # seeded by the document's own hash
    a = out[0]
    # Eligible (6-12 words) and unique: only the two sentences of the first paragraph.
    assert a.question in ("Toola reads every file in the spool directory once a minute.",
                          "It never deletes a file it could not parse.")
    assert "spool" not in a.text and "parse" not in a.text  # the whole paragraph went
    assert shared in " ".join(a.text.split()) and "Other text stays" in a.text  # the rest stayed
    assert out[1].question == "Toolb is the other tool in this small suite."  # its shared sentence is skipped
    assert shared in " ".join(out[1].text.split())


def test_score_and_wins_losses() -> None:
    items = [KnownItem("a", "man1", "q", "t"), KnownItem("b", "man1", "q", "t"), KnownItem("c", "man1", "q", "t")]
    ours = known_item.score([["a"], ["x", "b"], ["x"] * 11], items)
    theirs = known_item.score([["x", "a"], ["b"], ["c"]], items)
    assert ours["hit_at_5"] == pytest.approx(2 / 3, abs=1e-4) and ours["mrr_at_10"] == pytest.approx(0.5)
    duel = known_item.wins_losses(ours["rr"], theirs["rr"], items)
    assert (duel["wins"], duel["losses"], duel["ties"]) == (1, 2, 0)
    assert duel["won"] == [{"id": "a", "agent_rank": 1, "baseline_rank": 2}]


def test_the_whole_path_on_a_slice(tmp_path: Path) -> None:
    ctx = RunContext(Sizes.quick(), quick=True)
    stats = known_item.measure(ctx, "tuning", tmp_path, limit=12)
    assert stats["documents"] == 12 and stats["questions"] >= 6
    for name in ("agent", "baseline_hybrid", "baseline_bm25", "baseline_dense"):
        assert 0 <= stats["scores"][name]["hit_at_5"] <= 1 and 0 <= stats["scores"][name]["mrr_at_10"] <= 1
    duel = stats["versus_baseline"]
    assert duel["wins"] + duel["losses"] + duel["ties"] == stats["questions"]
    # Twelve documents: both find most of them.
    assert stats["scores"]["agent"]["hit_at_5"] >= 0.5 and stats["scores"]["baseline_hybrid"]["hit_at_5"] >= 0.5
