"""`core__calculator`: exact-enough arithmetic without `eval` (a small AST walker with bounds)."""

import ast
import operator
from collections.abc import Callable
from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from cogni_graphs.tools.errors import ToolArgumentError

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_EXPONENT = 100
MAX_MAGNITUDE = 10**100


class CalculatorArgs(BaseModel):
    expression: str = Field(description="Arithmetic with + - * / // % ** and parentheses", max_length=200)


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolArgumentError(f"exponent {right} is larger than {MAX_EXPONENT}")
        result = _BINARY[type(node.op)](left, right)
        if abs(result) > MAX_MAGNITUDE:
            raise ToolArgumentError("result is too large")
        return result
    raise ToolArgumentError(f"unsupported syntax: {ast.dump(node)[:60]}")


def calculate(expression: str) -> int | float:
    """Evaluate an arithmetic expression; anything but numbers and arithmetic operators is refused."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ToolArgumentError(f"not an arithmetic expression: {exc.msg}") from None
    try:
        return _eval(tree.body)
    except ZeroDivisionError:
        raise ToolArgumentError("division by zero") from None


async def calculator(expression: str) -> dict[str, Any]:
    """The value of `expression`."""
    return {"expression": expression, "result": calculate(expression)}


calculator_tool = StructuredTool.from_function(
    coroutine=calculator,
    name="core__calculator",
    description="Evaluate an arithmetic expression, e.g. '(3 + 4) * 2 ** 3'.",
    args_schema=CalculatorArgs,
)
