"""What the procedural world (and so the shipped default model) has words for: object nouns, colours.

Used to warn when a prompt names no object the default model was trained on (it still generates),
and by the evaluation to read the class and colour a free-form prompt asks for.
"""

from __future__ import annotations

import re

from gen3d.data.colors import COLORS
from gen3d.data.objects import CLASSES


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z][a-z-]*", text.lower())) + " "


def _plural(noun: str) -> list[str]:
    return [noun, noun + "s", noun + "es"]


def find_classes(prompt: str) -> list[str]:
    """Class names whose nouns (or synonyms) occur in ``prompt``, longest match first."""
    text = _words(prompt)
    hits: list[tuple[int, str]] = []
    for c in CLASSES:
        for noun in c.nouns:
            if any(f" {form} " in text for form in _plural(noun.lower())):
                hits.append((len(noun), c.name))
    seen: list[str] = []
    for _, name in sorted(hits, reverse=True):
        if name not in seen:
            seen.append(name)
    return seen


def find_colors(prompt: str) -> list[str]:
    """Colour names whose words (or synonyms) occur in ``prompt``, in order of appearance."""
    text = _words(prompt)
    found = []
    for col in COLORS:
        pos = [text.find(f" {w} ") for w in col.words if f" {w} " in text]
        if pos:
            found.append((min(pos), col.name))
    return [name for _, name in sorted(found)]


def known_objects_line() -> str:
    return ", ".join(c.nouns[0] for c in CLASSES)


def known_colors_line() -> str:
    return ", ".join(c.name for c in COLORS)


__all__ = ["find_classes", "find_colors", "known_colors_line", "known_objects_line"]
