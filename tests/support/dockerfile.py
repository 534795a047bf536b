"""Reads the Dockerfile's instructions the way the builder splits them (comments dropped, `\\`
continuations joined), so tests can check what it copies and run what it runs."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper case, e.g. COPY."""
    arguments: str
    """The rest of the instruction, continuations joined."""


def instructions(path: Path) -> list[Instruction]:
    found: list[Instruction] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        keyword, _, arguments = text.partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip()))
    return found


@dataclass(frozen=True)
class Copy:
    flags: dict[str, str]
    sources: list[str]
    destination: str


def copies(path: Path) -> list[Copy]:
    """Every COPY and ADD (shell form; the JSON form is parsed too)."""
    found = []
    for instruction in instructions(path):
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        words = (
            json.loads(instruction.arguments)
            if instruction.arguments.startswith("[")
            else shlex.split(instruction.arguments)
        )
        flags = {}
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            flags[name] = value
        found.append(Copy(flags, words[:-1], words[-1]))
    return found


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON (exec) form of CMD, ENTRYPOINT or HEALTHCHECK ... CMD."""
    text = instruction.arguments
    if instruction.keyword == "HEALTHCHECK":
        _, _, text = text.partition(" CMD ")
    text = text.strip()
    if not text.startswith("["):
        raise AssertionError(f"{instruction.keyword} is not in exec form: {instruction.arguments}")
    words = json.loads(text)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words)
    return words


def last(path: Path, keyword: str) -> Instruction:
    found = [i for i in instructions(path) if i.keyword == keyword]
    assert found, f"no {keyword} in {path}"
    return found[-1]
