"""Captions generated together with the exact parameters they describe.

A caption names the primary colour and the class (each through a random synonym), optionally a
size word (from the overall scale) and a proportion word (from a parameter at the end of its range),
a secondary slot's colour when it differs from the primary one, and the motion. Every word is true
of the spec it was generated from; :func:`canonical_caption` is the plain form ("a red mug").
"""

from __future__ import annotations

import numpy as np

from gen3d.data.colors import COLOR_BY_NAME
from gen3d.data.motions import get_motion
from gen3d.data.world import LARGE_ABOVE, SMALL_BELOW, ObjectSpec

SIZE_WORDS = {"small": ("small", "tiny", "little"), "large": ("large", "big", "huge")}


def size_word(spec: ObjectSpec) -> str | None:
    if spec.scale < SMALL_BELOW:
        return "small"
    if spec.scale > LARGE_ABOVE:
        return "large"
    return None


def proportion_words(spec: ObjectSpec) -> list[str]:
    """Proportion adjectives true of this spec (e.g. ["tall", "narrow"])."""
    words = []
    for p in spec.object_class.params:
        w = p.adjective(spec.params[p.name])
        if w is not None and w not in words:
            words.append(w)
    return words


def _article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def secondary_slots(spec: ObjectSpec) -> list[tuple[str, str]]:
    """(slot, colour) of slots whose colour differs from the primary colour."""
    c = spec.object_class
    return [(s.name, spec.colors[s.name]) for s in c.slots[1:] if spec.colors[s.name] != spec.primary_color]


def canonical_caption(spec: ObjectSpec) -> str:
    """The plain caption: canonical colour and noun, secondary colours and motion if any."""
    c = spec.object_class
    text = _article(f"{spec.primary_color} {c.nouns[0]}")
    for slot, col in secondary_slots(spec):
        words = next(s.words for s in c.slots if s.name == slot) or (slot,)
        text += f" with {col} {words[0]}"
    if spec.motion is not None:
        text += f" {get_motion(spec.motion).words[0]}"
    return text


def random_caption(spec: ObjectSpec, rng: np.random.Generator) -> str:
    """One caption with random synonyms, word order and optional adjectives, all true of ``spec``."""

    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    c = spec.object_class
    color = pick(COLOR_BY_NAME[spec.primary_color].words)
    noun = pick(c.nouns)
    adjs = []
    sw = size_word(spec)
    if sw is not None and rng.random() < 0.7:
        adjs.append(pick(SIZE_WORDS[sw]))
    props = proportion_words(spec)
    if props and rng.random() < 0.5:
        adjs.append(pick(props))
    adj = " ".join(adjs)

    tails = []
    for slot, col in secondary_slots(spec):
        words = next(s.words for s in c.slots if s.name == slot) or (slot,)
        tails.append(f"with {pick(COLOR_BY_NAME[col].words)} {pick(words)}")
    motion_word = get_motion(spec.motion).words if spec.motion else None

    form = int(rng.integers(4))
    if form == 0:  # "a small red mug"
        head = _article(" ".join(x for x in (adj, color, noun) if x))
    elif form == 1:  # "red mug" (no article)
        head = " ".join(x for x in (adj, color, noun) if x)
    elif form == 2:  # "a small mug in red"
        head = _article(" ".join(x for x in (adj, noun) if x)) + f" in {color}"
    else:  # "a small mug that is red"
        head = _article(" ".join(x for x in (adj, noun) if x)) + f" that is {color}"
    text = " ".join([head, *tails])
    if motion_word is not None:
        text += f" {pick(motion_word)}" if form != 3 else f" and is {pick(motion_word)}"
    return text


def captions_for(spec: ObjectSpec, n: int = 3, seed: int | None = None) -> list[str]:
    """The canonical caption followed by ``n`` random paraphrases (deterministic per spec)."""
    rng = np.random.default_rng([spec.seed if seed is None else seed, 0xCA9])
    out = [canonical_caption(spec)]
    for _ in range(n):
        out.append(random_caption(spec, rng))
    return out
