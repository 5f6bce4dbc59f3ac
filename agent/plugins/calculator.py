"""A safe calculator: arithmetic parsed with `ast` and evaluated node by node. No eval, no names,
no calls, no attribute access; exponents and magnitudes are bounded so a request cannot burn CPU."""

from __future__ import annotations

import ast
import math
import operator

from pydantic import BaseModel, Field

from agent.plugins.registry import Tool, ToolError

MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e100

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class CalculatorArgs(BaseModel):
    expression: str = Field(..., min_length=1, max_length=256, description="Arithmetic, e.g. (2 + 3) * 4 ** 2")


def evaluate(expression: str) -> int | float:
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not an arithmetic expression: {exc.msg}") from exc
    return _eval(tree.body)


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > MAX_EXPONENT or abs(left) > MAX_MAGNITUDE):
            raise ToolError(f"exponent too large (limit {MAX_EXPONENT})")
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError as exc:
            raise ToolError("division by zero") from exc
        except OverflowError as exc:
            raise ToolError("result too large") from exc
        if isinstance(result, complex):
            raise ToolError("result is not a real number")
        if abs(result) > MAX_MAGNITUDE or (isinstance(result, float) and not math.isfinite(result)):
            raise ToolError(f"result too large (limit {MAX_MAGNITUDE:g})")
        return result
    raise ToolError(f"only numbers and + - * / // % ** ( ) are allowed, found {type(node).__name__}")


def _run(args: CalculatorArgs) -> dict[str, int | float | str]:
    value = evaluate(args.expression)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    return {"expression": args.expression, "value": value}


calculator_tool = Tool(
    name="calculator",
    description="Evaluate an arithmetic expression (numbers, + - * / // % ** and parentheses).",
    arguments=CalculatorArgs,
    func=_run,
)
