"""Rules for the modules setup.py compiles with mypyc (the opt-in build), checked on the sources.

Compiled, an ``await`` inside an ``except`` or ``finally`` block can let an exception that was already
handled resurface (gateway/middleware.py tells the case): such awaits belong after the try statement.
`make test-compiled` would catch it only where a test happens to drive that path with a thrown-in error.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def compiled_modules() -> list[Path]:
    text = (ROOT / "setup.py").read_text()
    listed = re.search(r"^COMPILED = \[(.*?)^\]", text, re.MULTILINE | re.DOTALL)
    assert listed is not None, "setup.py has no COMPILED list"
    paths: list[Path] = []
    for pattern in re.findall(r'"(gateway/[^"]+\.py)"', listed[1]):
        found = sorted(ROOT.glob(pattern))
        assert found, f"setup.py compiles {pattern}, which matches nothing"
        paths += found
    return paths


def awaits_in_handlers(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Try | ast.TryStar):
            for body in [*(handler.body for handler in node.handlers), node.finalbody]:
                for stmt in body:
                    lines += [sub.lineno for sub in ast.walk(stmt)
                              if isinstance(sub, ast.Await | ast.AsyncWith | ast.AsyncFor)]
    return lines


def test_the_compiled_list_covers_the_per_request_path() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in compiled_modules()}
    assert {"gateway/middleware.py", "gateway/admit.py", "gateway/parse.py", "gateway/call.py",
            "gateway/signing/v1.py"} <= names


def test_no_compiled_module_awaits_inside_except_or_finally() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}" for path in compiled_modules()
             for line in awaits_in_handlers(path.read_text())]
    assert found == []


def test_the_check_sees_an_await_in_a_handler() -> None:
    source = ("async def f():\n    try:\n        pass\n    except E:\n        await g()\n"
              "    finally:\n        await h()\n")
    assert awaits_in_handlers(source) == [5, 7]
