"""The shipped golden set: valid, and every relevant id is a section of its frozen corpus.

The corpus is a copy of the docs (docs/evaluation.md, "The golden corpus"), so editing docs/ never
moves the gate. Whether the agent clears prod's floors on it is tested with the real Tekton step
script (tests/release/test_tekton_scripts.py).
"""

from pathlib import Path

from agent.eval.dataset import load_corpus, load_dataset, unknown_relevant_ids

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "agent" / "eval" / "golden" / "questions.jsonl"
CORPUS = ROOT / "agent" / "eval" / "golden" / "corpus"


def test_golden_set_is_valid_and_sized():
    items = load_dataset(GOLDEN)
    assert 25 <= len(items) <= 40
    questions = [i.question.question.lower() for i in items]
    assert len(set(questions)) == len(questions), "duplicate questions"


def test_every_relevant_id_exists_in_the_frozen_corpus():
    items = load_dataset(GOLDEN)
    corpus_ids = {d.id for d in load_corpus([CORPUS / "docs", CORPUS / "README.md"])}
    missing = unknown_relevant_ids(items, corpus_ids)
    assert not missing, ("golden set ids not in the frozen corpus: "
                         + "; ".join(f"line {line}: {doc_id}" for line, doc_id in missing))


def test_gate_files_exist_for_every_stack_and_prod_is_strictest():
    from agent.eval.gate import SPECS, load_gate

    stacks = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml")
                    for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
    gates = {p.stem: load_gate(p) for p in (ROOT / "stacks" / "gates").glob("*.json")}
    assert set(stacks) <= set(gates), f"stacks without a gate file: {set(stacks) - set(gates)}"
    prod = gates["prod"].thresholds.model_dump()
    for name, gate in gates.items():
        for key, value in gate.thresholds.model_dump().items():
            if value is None:
                continue
            assert prod[key] is not None, f"prod lacks {key} that {name} checks"
            stricter = prod[key] >= value if SPECS[key].op == ">=" else prod[key] <= value
            assert stricter, f"prod {key}={prod[key]} is looser than {name}'s {value}"
