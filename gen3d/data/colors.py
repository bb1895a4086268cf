"""Named colours of the procedural world, with the synonyms captions use for them.

Every colour has one albedo (linear-ish sRGB in [0, 1]) that the renderer paints and the colour
metric classifies against; synonyms only change the words, never the albedo, so "a crimson mug"
and "a red mug" describe the same object.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NamedColor:
    name: str
    rgb: tuple[float, float, float]
    synonyms: tuple[str, ...]

    @property
    def words(self) -> tuple[str, ...]:
        """The name followed by its synonyms (everything a caption may call it)."""
        return (self.name, *self.synonyms)


COLORS: tuple[NamedColor, ...] = (
    NamedColor("red", (0.80, 0.10, 0.10), ("crimson", "scarlet", "cherry-red")),
    NamedColor("orange", (0.95, 0.50, 0.08), ("tangerine", "amber", "pumpkin-orange")),
    NamedColor("yellow", (0.95, 0.85, 0.15), ("golden", "lemon", "canary-yellow")),
    NamedColor("green", (0.15, 0.65, 0.20), ("emerald", "leaf-green", "grass-green")),
    NamedColor("cyan", (0.10, 0.75, 0.80), ("teal", "turquoise", "aqua")),
    NamedColor("blue", (0.12, 0.25, 0.85), ("azure", "cobalt", "sapphire")),
    NamedColor("purple", (0.50, 0.18, 0.70), ("violet", "lilac", "plum")),
    NamedColor("pink", (0.95, 0.45, 0.70), ("rose", "magenta", "fuchsia")),
    NamedColor("brown", (0.45, 0.27, 0.12), ("chocolate", "wooden", "chestnut")),
    NamedColor("white", (0.93, 0.93, 0.93), ("ivory", "snow-white", "pale")),
    NamedColor("gray", (0.50, 0.50, 0.50), ("grey", "silver", "ash-grey")),
    NamedColor("black", (0.07, 0.07, 0.07), ("ebony", "jet-black", "charcoal")),
)

COLOR_BY_NAME: dict[str, NamedColor] = {c.name: c for c in COLORS}

# Every word (name or synonym) -> canonical colour name.
COLOR_WORDS: dict[str, str] = {w: c.name for c in COLORS for w in c.words}


def get_color(name: str) -> NamedColor:
    """Look up a colour by its name or any synonym (case-insensitive)."""
    key = COLOR_WORDS.get(name.strip().lower())
    if key is None:
        raise KeyError(f"unknown colour {name!r}; known colours: {', '.join(COLOR_BY_NAME)}")
    return COLOR_BY_NAME[key]
