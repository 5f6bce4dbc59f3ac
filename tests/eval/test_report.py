"""Report building and the Markdown summary, from hand-made question results."""

from agent.eval.report import build_report, render_markdown
from agent.eval.runner import QuestionResult, aggregate


def result(line, retrieved, relevant, support=None, unsupported=()):
    from agent.eval import metrics as m

    return QuestionResult(line=line, question=f"question {line}?", relevant=relevant, retrieved=retrieved,
                          hit=m.hit_at_k(retrieved, relevant, 3), recall=m.recall_at_k(retrieved, relevant, 3),
                          reciprocal_rank=m.reciprocal_rank(retrieved, relevant, 3),
                          ndcg=m.ndcg_at_k(retrieved, relevant, 3), retrieve_ms=10.0 * line, chat_ms=100.0 * line,
                          answer="a. b.", support=support, unsupported=list(unsupported))


def test_aggregate_misses_and_markdown():
    results = [result(1, ["a", "b"], ["a"], support=1.0),
               result(2, ["x", "b", "c"], ["b", "z"], support=0.5, unsupported=["Made | up."]),
               result(3, ["x"], ["q"])]
    metrics = aggregate(results)
    assert metrics["hit_at_k"] == round(2 / 3, 4)
    assert metrics["recall_at_k"] == round((1 + 0.5 + 0) / 3, 4)
    assert metrics["mrr"] == round((1 + 0.5 + 0) / 3, 4)
    assert metrics["answer_support"] == 0.75 and metrics["answered"] == 2
    assert metrics["latency_ms"]["chat"]["p50"] == 200.0

    report = build_report(metrics=metrics, checks=[], results=results, k=3,
                          context={"dataset": "q.jsonl", "target": "stub"})
    assert report["passed"] is True  # no thresholds: nothing can fail
    assert [m["line"] for m in report["misses"]] == [2, 3]
    assert report["misses"][0]["first_relevant_rank"] == 2
    assert report["misses"][1]["first_relevant_rank"] is None
    md = render_markdown(report)
    assert "No thresholds were given" in md
    assert "| 2 | question 2? | b, z | x, b, c | 2 |" in md
    assert "| 2 | question 2? | 0.5 | Made \\| up. |" in md  # pipes escaped inside table cells
