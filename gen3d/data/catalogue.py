"""What the procedural world contains, as data (``--json``) or as text for people."""

from __future__ import annotations

from typing import Any

from gen3d.data.colors import COLORS
from gen3d.data.motions import MOTIONS
from gen3d.data.objects import CLASSES
from gen3d.data.world import allowed_motions, heldout_colors, heldout_motion


def catalogue() -> dict[str, Any]:
    return {
        "classes": [
            {
                "name": c.name,
                "kind": c.kind,
                "nouns": list(c.nouns),
                "slots": [{"name": s.name, "words": list(s.words)} for s in c.slots],
                "params": [
                    {"name": p.name, "lo": p.lo, "hi": p.hi, "canonical": p.canonical,
                     "word_hi": p.word_hi, "word_lo": p.word_lo}
                    for p in c.params
                ],
                "hinge": list(c.hinge.parts) if c.hinge else None,
                "motions": list(allowed_motions(c)),
                "heldout_colors": list(heldout_colors(c)),
                "heldout_motion": heldout_motion(c),
            }
            for c in CLASSES
        ],
        "colors": [{"name": k.name, "rgb": list(k.rgb), "synonyms": list(k.synonyms)} for k in COLORS],
        "motions": [{"name": m.name, "words": list(m.words), "cyclic": m.cyclic} for m in MOTIONS],
    }


def format_catalogue(cat: dict[str, Any]) -> str:
    lines = [f"{len(cat['classes'])} classes (name: nouns | params | colour slots | motions)"]
    for c in cat["classes"]:
        params = ", ".join(f"{p['name']} {p['lo']:g}..{p['hi']:g}" for p in c["params"])
        slots = ", ".join(s["name"] for s in c["slots"])
        lines.append(f"  {c['name']:<10} {'/'.join(c['nouns'])} | {params} | {slots} | {' '.join(c['motions'])}")
    lines.append(f"\n{len(cat['colors'])} colours (name: synonyms)")
    for k in cat["colors"]:
        lines.append(f"  {k['name']:<7} {', '.join(k['synonyms'])}")
    lines.append(f"\n{len(cat['motions'])} motions: " + ", ".join(m["name"] for m in cat["motions"]))
    lines.append("\nsize words: small/tiny/little (scale < 0.85), large/big/huge (scale > 1.05)")
    lines.append("\nheld out of every training set (for measuring generalisation):")
    lines.append("  colour-class: " + "; ".join(f"{' / '.join(c['heldout_colors'])} {c['name']}" for c in cat["classes"]))
    lines.append("  class-motion: " + "; ".join(f"{c['name']} {c['heldout_motion']}" for c in cat["classes"]))
    return "\n".join(lines) + "\n"
