"""The composite classes of the procedural world: everyday objects built from primitive parts.

Each builder fixes one reference dimension (a table's length, a car's length, a bowl's rim radius)
and lets the parameters set proportions against it: the world rescales every object to a fixed size,
so parameters that all scaled the same shape would cancel out and their caption words ("tall",
"thick-legged") could contradict the picture. Parameter words are adjectives for the whole object.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

from gen3d.data.parts import Hinge, ObjectClass, Param, Part, Slot
from gen3d.data.shapes_primitives import (
    ROUND,
    SMALL_ROUND,
    arc,
    box,
    cone_y,
    cone_z,
    cylinder_y,
    hull,
    revolve_y,
    rod,
    sphere,
    torus_y,
    tube,
)


def _composite(name, nouns, params, slots, build, excluded=("open",), hinge=None) -> ObjectClass:
    return ObjectClass(name=name, nouns=nouns, kind="composite", params=params, slots=slots, build=build,
                       hinge=hinge, excluded_motions=excluded)


def _y_range_box(size_x: float, y0: float, y1: float, size_z: float, x: float = 0.0, z: float = 0.0):
    """A box spanning heights y0..y1 (legs, posts, walls)."""
    return box((size_x, y1 - y0, size_z), (x, (y0 + y1) / 2, z))


# --------------------------------------------------------------------------------------------------
# Household objects
# --------------------------------------------------------------------------------------------------


def _mug(p: dict[str, float]) -> list[Part]:
    r, h = 0.45, p["height"]
    t = 0.08 * r
    # Body: a closed revolved profile (outer wall, rim, inner wall, floor): hollow and watertight.
    profile = [[0.0, 0.0], [r, 0.0], [r, h], [r - t, h], [r - t, 0.12 * h], [0.0, 0.12 * h]]
    body = revolve_y(profile, sections=40)
    # Handle: a D-shaped arc on +x whose ends sit inside the wall (a full torus would poke into the cup).
    hr = min(p["handle"] * 0.3 * h, 0.42 * h)
    path = arc(hr, -np.pi / 2, np.pi / 2, n=14) * [0.8, 1.0, 1.0] + [r - t / 2, 0.5 * h, 0.0]
    handle = tube(path, min(0.2 * hr, 0.07))
    return [Part("body", body, "body"), Part("handle", handle, "handle")]


MUG = _composite(
    "mug", ("mug", "cup", "coffee cup", "coffee mug"),
    (Param("height", 0.5, 1.3, 0.9, "tall", "short"), Param("handle", 0.8, 1.2, 1.0)),  # radius 0.45 fixed
    (Slot("body"), Slot("handle", ("handle",))),
    _mug,
)


def _bottle(p: dict[str, float]) -> list[Part]:
    r, h, nl = 0.3, p["height"], p["neck_length"]
    nr, sh = p["neck_width"] * r, 0.45 * r
    s = np.linspace(0, 1, 9)
    shoulder = np.stack([nr + (r - nr) * (1 + np.cos(np.pi * s)) / 2, h + sh * s], axis=1)
    top = h + sh + nl
    profile = [[0, 0], [0.9 * r, 0], [r, 0.05 * r], *shoulder, [nr, top], [0, top]]
    cap_h = 0.45 * r
    return [
        Part("body", revolve_y(profile), "body"),
        Part("cap", cylinder_y(1.18 * nr, cap_h, (0, top - 0.3 * cap_h, 0)), "cap"),
        Part("label", cylinder_y(1.01 * r, 0.45 * h, (0, 0.5 * h, 0)), "label"),
    ]


BOTTLE = _composite(
    "bottle", ("bottle",),
    (
        Param("height", 0.6, 1.5, 1.0, "tall", "short"),
        Param("neck_length", 0.12, 0.5, 0.25, "long-necked", "short-necked"),
        Param("neck_width", 0.28, 0.5, 0.38),
    ),
    (Slot("body"), Slot("cap", ("cap",)), Slot("label", ("label",))),
    _bottle,
)


def _vase(p: dict[str, float]) -> list[Part]:
    R, H, t = 0.4, p["height"], 0.025
    nr = p["neck_width"] * R
    # Outer radius through base, belly, neck and flared lip; PCHIP keeps it free of overshoot.
    radius = PchipInterpolator([0, p["belly"] * H, 0.82 * H, H], [0.6 * R, R, nr, 1.3 * nr])
    ys = np.linspace(0, H, 22)
    outer = np.stack([radius(ys), ys], axis=1)
    floor = 0.06 * H
    ys_in = np.linspace(H, floor, 20)
    inner = np.stack([radius(ys_in) - t, ys_in], axis=1)
    body = revolve_y([[0, 0], *outer, *inner, [0, floor]])
    yb, bw = p["belly"] * H, 0.03 * H
    band = revolve_y([[R - 0.018, yb - bw], [R + 0.008, yb - bw], [R + 0.008, yb + bw], [R - 0.018, yb + bw],
                      [R - 0.018, yb - bw]])
    return [Part("body", body, "body"), Part("band", band, "band")]


VASE = _composite(
    "vase", ("vase", "flower vase"),
    (
        Param("height", 0.9, 2.0, 1.3, "tall", "short"),
        Param("neck_width", 0.3, 0.65, 0.45, "wide-necked", "narrow-necked"),
        Param("belly", 0.3, 0.55, 0.4),
    ),
    (Slot("body"), Slot("band", ("band", "stripe"))),
    _vase,
    excluded=("open", "roll"),
)


def _bowl(p: dict[str, float]) -> list[Part]:
    R, H, t = 0.6, p["depth"], 0.04
    rf = p["foot"] * R

    def radius(s):  # s = y / H; e > 1 bulges the wall outward near the foot
        return rf + (R - rf) * (1 - (1 - s) ** p["roundness"])

    s_out = np.linspace(0, 1, 16)
    floor = 0.08 * H
    s_in = np.linspace(1, floor / H, 14)
    outer = np.stack([radius(s_out), H * s_out], axis=1)
    inner = np.stack([radius(s_in) - t, H * s_in], axis=1)
    body = revolve_y([[0, 0], *outer, *inner, [0, floor]], sections=40)
    rim = torus_y(R - t / 2, 0.7 * t, (0, H, 0), sections=40, tube_sections=8)
    return [Part("body", body, "body"), Part("rim", rim, "rim")]


BOWL = _composite(
    "bowl", ("bowl",),
    (
        Param("depth", 0.25, 0.6, 0.4, "deep", "shallow"),
        Param("foot", 0.3, 0.55, 0.4),
        Param("roundness", 1.3, 3.0, 2.0),
    ),
    (Slot("body"), Slot("rim", ("rim",))),
    _bowl,
    excluded=("open", "roll"),
)


def _lamp(p: dict[str, float]) -> list[Part]:
    Rb, sh, pole_h = 0.45, p["shade_height"], p["height"]
    Rt, t = p["shade_top"] * Rb, 0.02
    br = p["base_radius"]
    y0 = pole_h - 0.35 * sh  # the shade hides the pole's top and the bulb

    def inner_r(y):
        return Rb - t + (Rt - Rb) * (y - y0) / sh

    shade = revolve_y([[Rb, y0], [Rt, y0 + sh], [Rt - t, y0 + sh], [Rb - t, y0], [Rb, y0]], sections=40)
    base = revolve_y([[0, 0], [br, 0], [br, 0.04], [0.55 * br, 0.1], [0.0, 0.12]], sections=40)
    spider_y = y0 + 0.8 * sh
    parts = [
        Part("shade", shade, "shade"),
        Part("base", base, "base"),
        Part("pole", cylinder_y(0.03, spider_y - 0.05, (0, (spider_y + 0.05) / 2, 0), SMALL_ROUND), "pole"),
        Part("bulb", sphere(0.08, (0, y0 + 0.35 * sh, 0), subdivisions=2), "pole"),
    ]
    # Three spokes hold the shade on the pole so nothing floats.
    for k in range(3):
        a = 2 * np.pi * k / 3
        tip = (inner_r(spider_y) + 0.01) * np.array([np.cos(a), 0, np.sin(a)]) + [0, spider_y, 0]
        parts.append(Part(f"spoke{k}", rod(0.012, [0, spider_y, 0], tip, sections=8), "pole"))
    return parts


LAMP = _composite(
    "lamp", ("lamp", "reading lamp"),  # not "table lamp"/"desk lamp": they contain table nouns
    (
        Param("height", 0.6, 1.6, 1.0, "tall", "short"),
        Param("shade_height", 0.3, 0.6, 0.45),
        Param("shade_top", 0.45, 0.85, 0.65),
        Param("base_radius", 0.25, 0.45, 0.33),
    ),
    (Slot("shade", ("shade", "lampshade")), Slot("pole", ("pole", "stand")), Slot("base", ("base",))),
    _lamp,
    excluded=("open", "roll"),
)


# --------------------------------------------------------------------------------------------------
# Furniture
# --------------------------------------------------------------------------------------------------


def _chair(p: dict[str, float]) -> list[Part]:
    W, D, sh, bh, lt = 1.0, p["depth"], p["seat_height"], p["back_height"], p["leg_thickness"]
    st = 0.08
    parts = [Part("seat", box((W, st, D), (0, sh - st / 2, 0)), "seat")]
    for i, (sx, sz) in enumerate([(-1, -1), (1, -1), (-1, 1), (1, 1)]):
        leg = _y_range_box(lt, 0.0, sh - st / 2, lt, sx * (W - lt) / 2, sz * (D - lt) / 2)
        parts.append(Part(f"leg{i}", leg, "legs"))
    parts.append(Part("back", _y_range_box(W, sh - st / 2, sh + bh, 0.07, 0, -D / 2 + 0.035), "back"))
    return parts


CHAIR = _composite(
    "chair", ("chair",),
    (
        Param("depth", 0.85, 1.15, 1.0),
        Param("seat_height", 0.75, 1.25, 1.0, "tall", "low"),
        Param("back_height", 0.6, 1.4, 1.0, "high-backed", "low-backed"),
        Param("leg_thickness", 0.06, 0.13, 0.09, "thick-legged", "thin-legged"),
    ),
    (Slot("seat", ("seat",)), Slot("legs", ("legs",)), Slot("back", ("back", "backrest"))),
    _chair,
    excluded=("open", "roll"),
)


def _table(p: dict[str, float]) -> list[Part]:
    L, D, H, lt, tt = 1.6, p["depth"], p["height"], p["leg_thickness"], 0.06
    parts = [Part("top", box((L, tt, D), (0, H - tt / 2, 0)), "top")]
    inset = 0.06
    for i, (sx, sz) in enumerate([(-1, -1), (1, -1), (-1, 1), (1, 1)]):
        x, z = sx * (L / 2 - inset - lt / 2), sz * (D / 2 - inset - lt / 2)
        leg = _y_range_box(lt, 0.0, H - tt / 2, lt, x, z)
        parts.append(Part(f"leg{i}", leg, "legs"))
    return parts


TABLE = _composite(
    "table", ("table", "desk"),
    (
        Param("depth", 0.6, 1.1, 0.85),
        Param("height", 0.5, 1.0, 0.75, "tall", "low"),
        Param("leg_thickness", 0.05, 0.14, 0.08, "thick-legged", "thin-legged"),
    ),
    (Slot("top", ("top", "tabletop")), Slot("legs", ("legs",))),
    _table,
    excluded=("open", "roll"),
)


def _bench(p: dict[str, float]) -> list[Part]:
    L, D, H, bh = 2.0, p["depth"], p["height"], p["back_height"]
    lt, pt = 0.07, 0.05  # leg and plank thickness
    lx = L / 2 - 0.18
    parts = []
    gap = 0.02
    pw = (D - 2 * gap) / 3
    for i in range(3):  # three seat planks with gaps between them
        z = -D / 2 + pw / 2 + i * (pw + gap)
        parts.append(Part(f"plank{i}", box((L, pt, pw), (0, H - pt / 2, z)), "seat"))
    for i, sx in enumerate((-1, 1)):
        front = _y_range_box(lt, 0.0, H - pt, lt, sx * lx, D / 2 - lt / 2 - 0.03)
        rear = _y_range_box(lt, 0.0, H + bh, lt, sx * lx, -D / 2 + lt / 2)  # rear legs carry the back
        rail = box((lt, 0.06, D), (sx * lx, H - pt - 0.03, 0))
        parts += [Part(f"front_leg{i}", front, "legs"), Part(f"rear_leg{i}", rear, "legs"),
                  Part(f"rail{i}", rail, "legs")]
    for i, frac in enumerate((0.4, 0.85)):
        plank = box((L, 0.3 * bh, 0.04), (0, H + frac * bh - 0.15 * bh, -D / 2 + lt + 0.02))
        parts.append(Part(f"back_plank{i}", plank, "back"))
    return parts


BENCH = _composite(
    "bench", ("bench", "park bench"),
    (
        Param("depth", 0.4, 0.7, 0.55),
        Param("height", 0.45, 0.75, 0.6, "tall", "low"),
        Param("back_height", 0.3, 0.65, 0.45, "high-backed", "low-backed"),
    ),
    (Slot("seat", ("seat", "planks")), Slot("legs", ("legs", "frame")), Slot("back", ("back", "backrest"))),
    _bench,
    excluded=("open", "roll"),
)


def _chest_dims(p: dict[str, float]) -> tuple[float, float, float]:
    return 1.0, p["depth"], p["height"]


def _lid_hull(half_w: float, half_d: float, rise: float, y0: float, z0: float = 0.0):
    t = np.linspace(0, np.pi, 13)
    pts = [[x, y0 + rise * np.sin(a), z0 + half_d * np.cos(a)] for x in (-half_w, half_w) for a in t]
    return hull(pts)


def _chest(p: dict[str, float]) -> list[Part]:
    W, D, H = _chest_dims(p)
    lh, wt = p["lid_height"], 0.05
    # A hollow box (floor and four walls) so the open chest shows its inside.
    parts = [
        Part("floor", box((W, wt, D), (0, wt / 2, 0)), "body"),
        Part("wall_front", _y_range_box(W, 0, H, wt, 0, D / 2 - wt / 2), "body"),
        Part("wall_back", _y_range_box(W, 0, H, wt, 0, -D / 2 + wt / 2), "body"),
        Part("wall_left", _y_range_box(wt, 0, H, D - 0.01, -W / 2 + wt / 2), "body"),
        Part("wall_right", _y_range_box(wt, 0, H, D - 0.01, W / 2 - wt / 2), "body"),
        Part("lid", _lid_hull(W / 2 + 0.01, D / 2 + 0.01, lh, H), "lid"),
        Part("lock", box((0.12, 0.14, 0.03), (0, H - 0.07, D / 2 + 0.01)), "trim"),
    ]
    for i, x in enumerate((-0.3 * W, 0.3 * W)):
        # Bands stop just short of the rims so no band face is coplanar with a body or lid face.
        parts.append(Part(f"band{i}", _y_range_box(0.06, -0.005, H - 0.005, D + 0.02, x), "trim"))
        lid_band = _lid_hull(0.03, D / 2 + 0.02, lh + 0.015, H + 0.005)
        lid_band.apply_translation([x, 0, 0])
        parts.append(Part(f"lid_band{i}", lid_band, "trim"))
    return parts


CHEST = _composite(
    "chest", ("chest", "treasure chest", "storage chest"),
    (
        Param("depth", 0.5, 0.8, 0.62),
        Param("height", 0.35, 0.75, 0.5, "tall", "short"),
        Param("lid_height", 0.1, 0.35, 0.22),
    ),
    (Slot("body", ("body", "box")), Slot("lid", ("lid",)), Slot("trim", ("bands", "trim", "straps"))),
    _chest,
    excluded=("roll",),
    # The lid swings up about its back edge; (-1, 0, 0) lifts the front (+z) edge for positive angles.
    hinge=Hinge(("lid", "lid_band0", "lid_band1"), lambda p: (0.0, p["height"], -p["depth"] / 2 - 0.02),
                (-1.0, 0.0, 0.0), 110.0),
)


def _laptop(p: dict[str, float]) -> list[Part]:
    W, D, t = p["width"], 1.0, p["thickness"]
    th = 0.004
    # Closed: the screen lies on the base. The keyboard (lid colour) sits on the base and the display
    # panel (base colour) under the screen, each sunk into the other half so only opening shows them.
    return [
        Part("base", box((W, t, D), (0, t / 2, 0)), "base"),
        Part("barrel", rod(0.5 * t, [-0.42 * W, t, -D / 2], [0.42 * W, t, -D / 2]), "base"),
        Part("display", box((0.9 * W, th, 0.86 * D), (0, t - th / 2, 0)), "base"),
        Part("screen", box((W, 0.6 * t, D), (0, 1.3 * t, 0)), "screen"),
        Part("keyboard", box((0.86 * W, th, 0.42 * D), (0, t + th / 2, -0.17 * D)), "screen"),
        Part("trackpad", box((0.3 * W, th, 0.2 * D), (0, t + th / 2, 0.3 * D)), "screen"),
    ]


LAPTOP = _composite(
    "laptop", ("laptop", "notebook computer", "laptop computer"),
    (
        Param("width", 1.2, 1.6, 1.4, "wide", "narrow"),
        Param("thickness", 0.035, 0.09, 0.055, "thick", "thin"),
    ),
    (Slot("base", ("base", "body")), Slot("screen", ("lid", "cover"))),
    _laptop,
    excluded=("roll",),
    hinge=Hinge(("screen", "display"), lambda p: (0.0, p["thickness"], -0.5), (-1.0, 0.0, 0.0), 110.0),
)


# --------------------------------------------------------------------------------------------------
# Buildings, nature, figures
# --------------------------------------------------------------------------------------------------

_DOOR_T = 0.03


def _door_width() -> float:
    return 0.22 * 1.2


def _house(p: dict[str, float]) -> list[Part]:
    W, D, wh, rh = 1.2, p["depth"], p["wall_height"], p["roof_height"]
    o = 0.08  # eave overhang
    roof = hull([[sx * (W / 2 + o), wh - 0.02, sz * (D / 2 + o)] for sx in (-1, 1) for sz in (-1, 1)]
                + [[sx * (W / 2 + o), wh + rh, 0.0] for sx in (-1, 1)])
    cz = -0.22 * D
    roof_y = wh + rh * (1 - abs(cz) / (D / 2 + o))
    chimney = _y_range_box(0.14, wh + 0.05, roof_y + 0.18, 0.14, 0.25 * W, cz)
    dw, dh = _door_width(), 0.55 * wh
    door = box((dw, dh, _DOOR_T + 0.005), (0, dh / 2, D / 2 + (_DOOR_T - 0.005) / 2))
    knob = sphere(0.022, (dw / 2 - 0.045, 0.5 * dh, D / 2 + _DOOR_T + 0.01), subdivisions=1)
    parts = [
        Part("walls", box((W, wh, D), (0, wh / 2, 0)), "walls"),
        Part("roof", roof, "roof"),
        Part("chimney", chimney, "roof"),
        Part("door", door, "door"),
        Part("door_knob", knob, "door"),
    ]
    ws, wy, wt = 0.2, 0.58 * wh, 0.025
    for i, x in enumerate((-0.3 * W, 0.3 * W)):
        for j, sz in enumerate((-1, 1)):
            parts.append(Part(f"window_z{i}{j}", box((ws, ws, wt), (x, wy, sz * D / 2)), "windows"))
    for i, sx in enumerate((-1, 1)):
        parts.append(Part(f"window_x{i}", box((wt, ws, ws), (sx * W / 2, wy, 0)), "windows"))
    return parts


HOUSE = _composite(
    "house", ("house", "cottage", "hut"),
    (
        Param("depth", 0.8, 1.4, 1.0),
        Param("wall_height", 0.6, 1.1, 0.8, "tall", "low"),
        Param("roof_height", 0.3, 0.8, 0.5, "steep-roofed", None),
    ),
    (
        Slot("walls", ("walls",)),
        Slot("roof", ("roof",)),
        Slot("door", ("door",)),
        Slot("windows", ("windows",)),
    ),
    _house,
    excluded=("roll", "swing"),
    # The door swings outward about its left edge; axis -y turns its free (+x) edge towards +z.
    hinge=Hinge(("door", "door_knob"), lambda p: (-_door_width() / 2, 0.0, p["depth"] / 2 + _DOOR_T),
                (0.0, -1.0, 0.0), 100.0),
)


def _tree(p: dict[str, float]) -> list[Part]:
    R, H, th, tw = 0.6, p["height"], p["trunk_height"], p["trunk_width"]
    trunk_top = th + 0.1 * H  # reaches into the lowest cone
    parts = [Part("trunk", cylinder_y(tw, trunk_top, (0, trunk_top / 2, 0), SMALL_ROUND), "trunk")]
    for i in range(3):  # three stacked cones, each narrower and higher
        layer = cone_y(R * (1 - 0.22 * i), 0.46 * H, (0, th + 0.3 * H * i, 0), sections=24)
        parts.append(Part(f"foliage{i}", layer, "foliage"))
    return parts


TREE = _composite(
    "tree", ("tree", "pine tree", "fir tree"),
    (
        Param("height", 0.9, 2.2, 1.4, "tall", "short"),
        Param("trunk_height", 0.15, 0.45, 0.25),
        Param("trunk_width", 0.07, 0.16, 0.1),
    ),
    (Slot("foliage", ("foliage", "leaves", "needles")), Slot("trunk", ("trunk",))),
    _tree,
    excluded=("open", "roll"),
)


def _mushroom(p: dict[str, float]) -> list[Part]:
    R, sh, sw, ch = 0.6, p["stem_height"], p["stem_width"], p["cap_height"]
    stem = revolve_y([[0, 0], [1.2 * sw, 0], [1.05 * sw, 0.3 * sh], [sw, 0.8 * sh], [0.9 * sw, sh + 0.1],
                      [0, sh + 0.1]], sections=24)
    y0 = sh - 0.02
    a = np.linspace(0, np.pi / 2, 14)[:-1]
    dome = np.stack([R * np.cos(a), y0 + 0.04 + ch * np.sin(a)], 1)
    cap = revolve_y([[0, y0], [0.97 * R, y0 + 0.04], *dome,
                     [0, y0 + 0.04 + ch]], sections=40)
    parts = [Part("stem", stem, "stem"), Part("cap", cap, "cap")]
    # Spots: small discs flattened along the dome's normal (elevation, azimuth on the half ellipsoid).
    spots = [(1.35, 0.0), (0.7, 0.3), (0.6, 1.9), (0.75, 3.3), (0.55, 4.6), (0.8, 5.5), (0.3, 1.0),
             (0.3, 2.6), (0.3, 4.2), (0.3, 5.8)]
    for i, (el, az) in enumerate(spots):
        ring = R * np.cos(el)
        pos = np.array([ring * np.cos(az), y0 + 0.04 + ch * np.sin(el), ring * np.sin(az)])
        n = np.array([np.cos(el) * np.cos(az) / R, np.sin(el) / ch, np.cos(el) * np.sin(az) / R])
        n /= np.linalg.norm(n)
        spot = sphere(0.08, subdivisions=1)
        m = np.eye(4)
        m[:3, :3] = np.eye(3) - 0.7 * np.outer(n, n)
        spot.apply_transform(m)
        spot.apply_translation(pos + 0.012 * n)
        parts.append(Part(f"spot{i}", spot, "spots"))
    return parts


MUSHROOM = _composite(
    "mushroom", ("mushroom", "toadstool"),
    (
        Param("stem_height", 0.35, 0.9, 0.55, "tall", "short"),
        Param("stem_width", 0.12, 0.28, 0.18, "thick-stemmed", "thin-stemmed"),
        Param("cap_height", 0.25, 0.6, 0.4),
    ),
    (Slot("cap", ("cap",)), Slot("stem", ("stem",)), Slot("spots", ("spots", "dots"))),
    _mushroom,
    excluded=("open", "roll"),
)


def _snowman(p: dict[str, float]) -> list[Part]:
    R0 = 0.5
    R1 = p["body_ratio"] * R0
    R2 = p["head_ratio"] * R1
    c0 = R0
    c1 = c0 + R0 + 0.7 * R1  # balls overlap so they read as packed snow, not stacked beads
    c2 = c1 + R1 + 0.75 * R2
    brim_y = c2 + 0.8 * R2
    crown_h = p["hat_height"] * R2
    parts = [
        Part("bottom", sphere(R0, (0, c0, 0)), "body"),
        Part("middle", sphere(R1, (0, c1, 0)), "body"),
        Part("head", sphere(R2, (0, c2, 0)), "body"),
        Part("brim", cylinder_y(1.15 * R2, 0.05 * R2 + 0.02, (0, brim_y, 0)), "hat"),
        Part("crown", cylinder_y(0.72 * R2, crown_h, (0, brim_y + crown_h / 2, 0)), "hat"),
        Part("nose", cone_z(0.18 * R2, p["nose_length"] * R2, (0, c2, 0.8 * R2)), "nose"),
    ]
    for i, sx in enumerate((-1, 1)):
        x, y = 0.35 * R2 * sx, 0.3 * R2
        z = 0.97 * np.sqrt(R2**2 - x**2 - y**2)
        parts.append(Part(f"eye{i}", sphere(0.11 * R2, (x, c2 + y, z), subdivisions=1), "eyes"))
    for i, dy in enumerate((0.45, 0.0, -0.45)):
        z = 0.97 * np.sqrt(1 - dy**2) * R1
        parts.append(Part(f"button{i}", sphere(0.1 * R1, (0, c1 + dy * R1, z), subdivisions=1), "eyes"))
    return parts


SNOWMAN = _composite(
    "snowman", ("snowman", "snow man"),
    (
        Param("body_ratio", 0.6, 0.82, 0.72, "tall", "squat"),
        Param("head_ratio", 0.6, 0.85, 0.72),
        Param("hat_height", 0.5, 1.4, 0.9),
        Param("nose_length", 0.8, 1.8, 1.1, "long-nosed", None),
    ),
    (Slot("body", ("body", "snowballs")), Slot("hat", ("hat",)), Slot("nose", ("nose",)),
     Slot("eyes", ("eyes", "buttons"))),
    _snowman,
    excluded=("open", "roll"),
)


# --------------------------------------------------------------------------------------------------
# Vehicles and tools
# --------------------------------------------------------------------------------------------------


def _rocket(p: dict[str, float]) -> list[Part]:
    r, L, nl, fs = 0.3, p["length"], p["nose_length"], p["fin_size"]
    b = 0.25 * fs  # the fins reach below the body so the rocket stands on them
    top = b + L
    s = np.linspace(0, 1, 12)[:-1]
    ogive = np.stack([r * (1 - s**1.8) ** 0.6, top - 0.02 + nl * s], 1)
    nose = revolve_y([[0, top - 0.02], *ogive, [0, top + nl]])
    parts = [
        Part("body", cylinder_y(r, L, (0, b + L / 2, 0)), "body"),
        Part("nose", nose, "nose"),
        Part("window", rod(0.35 * r, [0, b + 0.68 * L, r - 0.07], [0, b + 0.68 * L, r + 0.03], 24), "window"),
    ]
    fin2d = [(0.85 * r, b + 1.3 * fs), (0.85 * r, b), (r + fs, 0.0), (r + fs, 0.45 * fs)]
    for k in range(4):
        a = np.pi / 4 + k * np.pi / 2
        radial, tangent = np.array([np.cos(a), 0, np.sin(a)]), np.array([-np.sin(a), 0, np.cos(a)])
        pts = [u * radial + [0, y, 0] + w * tangent for u, y in fin2d for w in (-0.025, 0.025)]
        parts.append(Part(f"fin{k}", hull(pts), "fins"))
    return parts


ROCKET = _composite(
    "rocket", ("rocket", "spaceship", "rocket ship"),
    (
        Param("length", 1.0, 2.2, 1.5, "tall", "short"),
        Param("nose_length", 0.35, 0.9, 0.6),
        Param("fin_size", 0.25, 0.55, 0.4, "big-finned", None),
    ),
    (Slot("body", ("body", "hull")), Slot("nose", ("nose", "tip")), Slot("fins", ("fins",)),
     Slot("window", ("window", "porthole"))),
    _rocket,
    excluded=("open", "roll"),
)


def _car(p: dict[str, float]) -> list[Part]:
    W, bh, cl, wr = p["width"], p["body_height"], p["cabin_length"], p["wheel_radius"]
    yb = 0.7 * wr
    yt = yb + bh
    body = hull([[x, yb, z] for x in (-0.97, 0.97) for z in (-W / 2, W / 2)]
                + [[x, yt, z] for x in (-0.95, 0.9) for z in (-W / 2, W / 2)]
                + [[x, yb + 0.6 * bh, z] for x in (-1.0, 1.0) for z in (-W / 2, W / 2)])
    cx, ch = -0.15, 0.32
    zb, zt = W / 2 - 0.05, W / 2 - 0.12  # the cabin narrows towards its roof
    cabin = hull([[x, yt - 0.02, z] for x in (cx - cl / 2, cx + cl / 2) for z in (-zb, zb)]
                 + [[x, yt + ch, z] for x in (cx - cl / 2 + 0.1, cx + cl / 2 - 0.25)
                    for z in (-zt, zt)])
    parts = [Part("body", body, "body"), Part("cabin", cabin, "cabin")]
    for i, (sx, sz) in enumerate([(-1, -1), (1, -1), (-1, 1), (1, 1)]):
        zc = sz * (W / 2 - 0.06)
        wheel = rod(wr, [sx * 0.62, wr, zc - 0.09], [sx * 0.62, wr, zc + 0.09], sections=24)
        parts.append(Part(f"wheel{i}", wheel, "wheels"))
    return parts


CAR = _composite(
    "car", ("car", "automobile"),
    (
        Param("width", 0.8, 1.1, 0.95),
        Param("body_height", 0.3, 0.55, 0.4),
        Param("cabin_length", 0.7, 1.2, 0.95),
        Param("wheel_radius", 0.17, 0.3, 0.22, "big-wheeled", "small-wheeled"),
    ),
    (Slot("body", ("body",)), Slot("cabin", ("cabin", "roof")), Slot("wheels", ("wheels", "tires", "tyres"))),
    _car,
)


def _dumbbell(p: dict[str, float]) -> list[Part]:
    wr, ww, bt = p["weight_radius"], p["weight_width"], p["bar_thickness"]
    y = wr  # lying on the ground, resting on its weights
    parts = [Part("bar", rod(bt, [-0.5, y, 0], [0.5, y, 0], sections=SMALL_ROUND), "bar")]
    for i, sx in enumerate((-1, 1)):
        plate = rod(wr, [sx * (0.5 - ww), y, 0], [sx * 0.5, y, 0], sections=ROUND)
        collar = rod(0.55 * wr, [sx * (0.5 - ww - 0.05), y, 0], [sx * (0.5 - ww + 0.01), y, 0], sections=24)
        parts += [Part(f"weight{i}", plate, "weights"), Part(f"collar{i}", collar, "weights")]
    return parts


DUMBBELL = _composite(
    "dumbbell", ("dumbbell", "hand weight"),
    (
        Param("weight_radius", 0.15, 0.32, 0.22),
        Param("weight_width", 0.08, 0.25, 0.15),
        Param("bar_thickness", 0.03, 0.07, 0.045, "thick", "thin"),
    ),
    (Slot("weights", ("weights", "plates", "ends")), Slot("bar", ("bar", "handle"))),
    _dumbbell,
)


def _hammer(p: dict[str, float]) -> list[Part]:
    L, hl, ht, hs = 1.0, p["head_length"], p["handle_thickness"], p["head_size"]
    yh = L - 0.5 * hs
    # The claw tapers from the head block to a thin edge, dropping slightly like a real claw.
    claw = hull([[0.0, yh + dy, z] for dy in (-0.6 * hs, 0.6 * hs) for z in (-0.55 * hs, 0.55 * hs)]
                + [[-0.55 * hl, yh - 0.35 * hs + dy, z] for dy in (-0.12 * hs, 0.12 * hs)
                   for z in (-0.45 * hs, 0.45 * hs)])
    return [
        Part("handle", cylinder_y(ht, L, (0, L / 2, 0), sections=SMALL_ROUND), "handle"),
        Part("grip", cylinder_y(1.35 * ht, 0.35 * L, (0, 0.175 * L, 0), sections=SMALL_ROUND), "grip"),
        Part("head_block", box((1.2 * hs, 1.5 * hs, 1.2 * hs), (0, yh, 0)), "head"),
        Part("face", rod(0.72 * hs, [0, yh, 0], [0.45 * hl, yh, 0], sections=24), "head"),
        Part("claw", claw, "head"),
    ]


HAMMER = _composite(
    "hammer", ("hammer",),
    (
        Param("head_length", 0.3, 0.55, 0.42),
        Param("handle_thickness", 0.03, 0.055, 0.04, "thick-handled", "thin-handled"),
        Param("head_size", 0.06, 0.11, 0.08),
    ),
    (Slot("head", ("head",)), Slot("handle", ("handle",)), Slot("grip", ("grip",))),
    _hammer,
    excluded=("open", "roll"),
)


COMPOSITES: tuple[ObjectClass, ...] = (
    MUG, CHAIR, TABLE, LAMP, SNOWMAN, TREE, HOUSE, MUSHROOM, ROCKET, DUMBBELL, BOTTLE, BENCH, CAR, CHEST,
    LAPTOP, VASE, BOWL, HAMMER,
)
