"""The client socket's lifecycle table (sans I/O) and who may change the state."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

import triosio
from triosio._client.lifecycle import TRANSITIONS, SocketState, Step, next_state
from triosio._errors import LifecycleError

S = SocketState
CLIENT = Path(triosio.__file__).parent / "_client"


def test_the_table() -> None:
    assert dict(TRANSITIONS) == {
        (S.DISCONNECTED, Step.START): S.CONNECTING,
        (S.CONNECTING, Step.ACCEPTED): S.CONNECTED,
        (S.CONNECTED, Step.LOST): S.CONNECTING,
        (S.CONNECTING, Step.STOPPED): S.DISCONNECTED,
        (S.CONNECTED, Step.STOPPED): S.DISCONNECTED,
        (S.DISCONNECTED, Step.STOPPED): S.DISCONNECTED,
    }


@pytest.mark.parametrize(("state", "step"), list(itertools.product(S, Step)))
def test_every_step_from_every_state(state: SocketState, step: Step) -> None:
    if (state, step) in TRANSITIONS:
        assert next_state(state, step) is TRANSITIONS[state, step]
    else:
        with pytest.raises(LifecycleError, match=f"'{step.value}' while {state.value}"):
            next_state(state, step)


def test_only_advance_writes_the_state() -> None:
    writers: list[str] = []
    for path in sorted(CLIENT.glob("*.py")):
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                targets: list[ast.expr] = []
                if isinstance(node, ast.Assign):
                    targets = node.targets
                elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                    targets = [node.target]
                if any(isinstance(t, ast.Attribute) and t.attr == "_state" for t in targets):
                    writers.append(f"{path.name}:{func.name}")
    assert writers == ["socket.py:__init__", "socket.py:_advance"]
