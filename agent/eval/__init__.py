"""The evaluation quality gate: `python -m agent.eval` (see docs/evaluation.md)."""
