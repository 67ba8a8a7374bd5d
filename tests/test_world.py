"""Tests of the synthetic world: engine/world (spec, renderer, framing, scenes, captions,
independent test set)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.world import captions as cap
from engine.world.color import (
    classify_background,
    classify_rgb,
    classify_rgb_array,
    hsv_to_rgb,
    in_region,
    median_rgb,
    nearest_color,
    rgb_to_hsv,
    srgb_to_lab,
)
from engine.world.framing import BoxFraming, crop_frame
from engine.world.independent import (
    NAMED_COLORS,
    render_independent_frame,
    render_independent_scene,
)
from engine.world.render import (
    coverage,
    object_geometry,
    render_batch,
    render_edited,
    render_frame,
    sample_attrs,
)
from engine.world.scenes import (
    frame_of,
    frame_reach,
    framed_attrs,
    render_scene,
    selection_for,
)
from engine.world.spec import (
    ATTR_KEYS,
    SPLITS,
    WORLD_SPEC,
    HsvRegion,
    WorldSpec,
    split_seed,
)

S = WORLD_SPEC
N_FRAMES = 1500


@pytest.fixture(scope="module")
def batch():
    return render_batch(N_FRAMES, seed=split_seed("test", 0), return_params=True)


@pytest.fixture(scope="module")
def scenes():
    shapes = [(640, 480, 5), (300, 300, 2), (800, 500, 8), (200, 160, 1)]
    return [render_scene(split_seed("test", 10 + i), w, h, n) for i, (w, h, n) in
            enumerate(shapes)]


def _mask_bbox(mask: np.ndarray, thr: float = 0.5) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask > thr)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# ----------------------------------------------------------------------------------------
# Spec
# ----------------------------------------------------------------------------------------
def test_spec_json_round_trip_and_validates():
    text = S.to_json()
    d = json.loads(text)
    assert d["framing_factor"] == S.framing_factor
    assert d["color_regions"]["red"]["h"] == [-15.0, 10.0]
    assert d["conventions"]["attr_keys"] == list(ATTR_KEYS) == ["shape", "color", "size",
                                                                "background"]
    back = WorldSpec.from_json(text)
    assert back == S and hash(back) == hash(S)
    back.validate()


def test_spec_rejects_margins_outside_bands():
    with pytest.raises(ValueError):
        WorldSpec(loose_margin_range=(0.2, 0.62)).validate()
    with pytest.raises(ValueError):
        WorldSpec(size_bands={"small": (0.16, 0.31), "large": (0.30, 0.40)}).validate()


def test_margin_ranges_map_into_size_bands():
    for m in np.linspace(*S.tight_margin_range, 13):
        assert S.size_for_radius(S.framed_radius(m)) == "large"
    for m in np.linspace(*S.loose_margin_range, 13):
        assert S.size_for_radius(S.framed_radius(m)) == "small"
    assert S.margin_for_radius(S.framed_radius(0.3)) == pytest.approx(0.3)
    assert S.size_bands["small"][1] < S.size_threshold() < S.size_bands["large"][0]


def test_split_seeds_disjoint():
    seen: dict[int, tuple[str, int]] = {}
    for split in SPLITS:
        for i in range(2000):
            s = split_seed(split, i)
            assert s not in seen, (split, i, seen.get(s))
            seen[s] = (split, i)
    with pytest.raises(ValueError):
        split_seed("holdout", 0)
    with pytest.raises(ValueError):
        split_seed("train", -1)


# ----------------------------------------------------------------------------------------
# Colours
# ----------------------------------------------------------------------------------------
def _hsv_grid(region: HsvRegion, shrink: float, n: int = 7, hues: int = 12) -> np.ndarray:
    def axis(lohi):
        lo, hi = lohi
        w = hi - lo
        return np.linspace(lo + shrink * w, hi - shrink * w, n)

    h = np.linspace(0, 360, hues, endpoint=False) if region.h is None else axis(region.h)
    hh, ss, vv = np.meshgrid(h, axis(region.s), axis(region.v), indexing="ij")
    return np.stack([hh % 360, ss, vv], -1).reshape(-1, 3)


def test_hsv_round_trip():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(500, 3)).astype(np.float64)
    assert np.allclose(hsv_to_rgb(rgb_to_hsv(rgb)), rgb, atol=1e-6)


@pytest.mark.parametrize("kind", ["color", "background"])
def test_regions_are_disjoint(kind):
    regions = S.color_regions if kind == "color" else S.background_regions
    h, s, v = np.meshgrid(np.arange(0, 360, 1.0), np.linspace(0, 1, 41), np.linspace(0, 1, 41),
                          indexing="ij")
    hsv = np.stack([h, s, v], -1)
    count = sum(in_region(hsv, r).astype(int) for r in regions.values())
    assert count.max() <= 1


def test_known_colours_classify():
    assert classify_rgb((255, 0, 0)) == "red"
    assert classify_rgb((255, 140, 0)) == "orange"
    assert classify_rgb((255, 255, 0)) == "yellow"
    assert classify_rgb((0, 128, 0)) == "green"
    assert classify_rgb((0, 0, 255)) == "blue"
    assert classify_rgb((128, 0, 128)) == "purple"
    assert classify_rgb((255, 255, 255)) == "white"
    assert classify_rgb((0, 0, 0)) == "black"
    # Gaps: brown, pink, cyan, mid grey have no object-colour name.
    for rgb in [(139, 69, 19), (255, 192, 203), (0, 255, 255), (128, 128, 128)]:
        assert classify_rgb(rgb) is None
    assert nearest_color((139, 69, 19)) in S.colors
    for name, region in S.background_regions.items():
        assert classify_background(region.center_rgb()) == name
        assert classify_rgb(region.center_rgb()) is None


def test_every_object_colour_distinguishable_on_every_background():
    """CIELAB ΔE76 between any colour of a region and any of a background region."""
    for shrink, floor in ((0.0, 12.0), (S.sample_shrink, 16.0)):
        for c, creg in S.color_regions.items():
            a = srgb_to_lab(hsv_to_rgb(_hsv_grid(creg, shrink)))
            for b, breg in S.background_regions.items():
                bb = srgb_to_lab(hsv_to_rgb(_hsv_grid(breg, shrink)))
                d = np.sqrt(((a[:, None] - bb[None]) ** 2).sum(-1)).min()
                assert d >= floor, (c, b, shrink, d)


# ----------------------------------------------------------------------------------------
# Renderer
# ----------------------------------------------------------------------------------------
def test_render_deterministic():
    a = render_batch(40, seed=7)
    b = render_batch(40, seed=7)
    c = render_batch(40, seed=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not np.array_equal(a[0], c[0])
    f1 = render_frame({"shape": "star"}, np.random.default_rng(3))
    f2 = render_frame({"shape": "star"}, np.random.default_rng(3))
    assert np.array_equal(f1[0], f2[0]) and np.array_equal(f1[1], f2[1])
    assert f1[0].shape == (64, 64, 3) and f1[0].dtype == np.uint8
    assert f1[1].shape == (64, 64) and f1[1].dtype == np.float32


def test_render_frame_honours_attrs():
    rng = np.random.default_rng(0)
    attrs = {"shape": "triangle", "color": "purple", "size": "small", "background": "mint"}
    img, mask, p = render_frame(attrs, rng, size=96, return_params=True)
    assert img.shape == (96, 96, 3)
    assert {k: p[k] for k in ATTR_KEYS} == attrs
    assert classify_rgb(median_rgb(img, mask)) == "purple"
    with pytest.raises(KeyError):
        render_frame({"colour": "red"}, rng)


def test_edge_band_supersampling_equals_full_supersampling():
    rng = np.random.default_rng(1)
    n = 24
    shapes = [S.shapes[i % 4] for i in range(n)]
    geom = object_geometry(shapes, rng.uniform(0, 360, n), rng.uniform(20, 28, n),
                           rng.uniform(20, 28, n), rng.uniform(6, 18, n))
    fast = coverage(geom, 48, 48)
    full = coverage(geom, 48, 48, full=True)
    assert np.abs(fast - full).max() < 1e-6
    # Anti-aliased: partial coverage exists on edges.
    assert ((fast > 0.05) & (fast < 0.95)).any()


def test_shape_areas_and_bbox_convention():
    r = 40.0
    expect = {
        "circle": np.pi * r * r,
        "square": (2 * r) ** 2,  # rotation 0 is axis-aligned: side 2r
        "triangle": 0.5 * (2 * r) * (2 * r * np.sqrt(3) / 2),  # apex up: width 2r
        "star": None,
    }
    for shape, area in expect.items():
        geom = object_geometry([shape], 0.0, 50.0, 50.0, r)
        cov = coverage(geom, 100, 100)[0]
        if area is not None:
            # 4x4 supersampling quantises an axis-aligned edge to 1/8 px.
            assert cov.sum() == pytest.approx(area, rel=5e-3), shape
        x0, y0, x1, y1 = geom.bbox[0]
        assert max(x1 - x0, y1 - y0) == pytest.approx(2 * r)
        assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((50.0, 50.0))
        # Any-coverage bounds; a star's thin tip may hold no sample in its last pixel.
        got = np.array(_mask_bbox(cov, 0.0))
        assert np.abs(got - np.array([x0, y0, x1, y1])).max() <= 1.0
    # Regular pentagram: area = 5 * (triangle O, outer vertex, inner vertex) * 2.
    geom = object_geometry(["star"], 0.0, 50.0, 50.0, r)
    cov = coverage(geom, 100, 100)[0]
    x0, _, x1, _ = geom.bbox[0]
    outer = (x1 - x0) / 2 / np.sin(np.radians(72))  # bbox width = 2 R sin 72°
    inner = outer * S.star_inner_ratio
    star_area = 10 * 0.5 * outer * inner * np.sin(np.radians(36))
    assert cov.sum() == pytest.approx(star_area, rel=3e-3)


def test_attributes_reachable_and_balanced(batch):
    _, _, attrs, _ = batch
    vocab = {"shape": S.shapes, "color": S.colors, "size": S.sizes,
             "background": S.backgrounds}
    for key, values in vocab.items():
        counts = {v: 0 for v in values}
        for a in attrs:
            assert set(a) == set(ATTR_KEYS)
            counts[a[key]] += 1
        expected = len(attrs) / len(values)
        for v, c in counts.items():
            assert 0.75 * expected < c < 1.25 * expected, (key, v, c)
    rng = np.random.default_rng(0)
    assert set(sample_attrs(rng)) == set(ATTR_KEYS)


def test_masks_and_geometry_match_pixels(batch):
    images, masks, attrs, p = batch
    size = images.shape[1]
    for i in range(0, N_FRAMES, 7):
        m = masks[i]
        x0, y0, x1, y1 = _mask_bbox(m, 0.0)
        r = p["radius"][i] * size
        cx, cy = p["center"][i] * size
        assert abs((x0 + x1) / 2 - cx) <= 1.0 and abs((y0 + y1) / 2 - cy) <= 1.0
        assert abs(max(x1 - x0, y1 - y0) - 2 * r) <= 2.0
        # Object fully inside the frame, away from the border.
        assert m[0].max() == 0 and m[-1].max() == 0 and m[:, 0].max() == 0 and m[:, -1].max() == 0
        # The rendered background is the background.
        bg = classify_background(np.median(images[i][m == 0], axis=0))
        assert bg == attrs[i]["background"]


def test_sizes_in_separated_bands(batch):
    images, masks, attrs, p = batch
    size = images.shape[1]
    measured = {"small": [], "large": []}
    for i in range(N_FRAMES):
        lo, hi = S.size_bands[attrs[i]["size"]]
        assert lo <= p["radius"][i] <= hi
        x0, y0, x1, y1 = _mask_bbox(masks[i])
        measured[attrs[i]["size"]].append(max(x1 - x0, y1 - y0) / 2 / size)
    assert max(measured["small"]) < S.size_threshold() < min(measured["large"])
    assert abs(p["center"] - 0.5).max() <= S.center_jitter


def test_rendered_colour_classifies_back(batch):
    images, masks, attrs, _ = batch
    hits = sum(classify_rgb(median_rgb(images[i], masks[i])) == attrs[i]["color"]
               for i in range(N_FRAMES))
    assert hits >= 0.99 * N_FRAMES
    # Most individual interior pixels are inside the region too (noise and gradients are
    # kept inside it).
    frac = []
    for i in range(0, N_FRAMES, 5):
        idx = classify_rgb_array(images[i][masks[i] >= 0.99])
        frac.append(np.mean(idx == S.colors.index(attrs[i]["color"])))
    assert np.mean(frac) > 0.97


def test_edited_frames_change_only_what_was_asked():
    n = 40
    images, masks, attrs, params = render_batch(n, 77, size=64, return_params=True)
    other = {"color": {"red": "blue"}, "background": {"beige": "grey"},
             "size": {"small": "large"}, "shape": {"circle": "star"}}

    def flip(key, value):
        return other[key].get(value) or next(iter(other[key]))

    keys = ("color", "background", "size", "shape")
    changes = [{keys[i % 4]: flip(keys[i % 4], attrs[i][keys[i % 4]])} if i % 5 else {}
               for i in range(n)]
    changes = [c if any(attrs[i][k] != v for k, v in c.items()) else {}
               for i, c in enumerate(changes)]
    e_images, e_masks, e_attrs = render_edited(params, attrs, changes, 5, size=64)
    for i in range(n):
        assert e_attrs[i] == {**attrs[i], **changes[i]}
        key = next(iter(changes[i]), None)
        if key in (None, "color", "background"):
            # same object in the same place: identical coverage
            assert np.array_equal(e_masks[i], masks[i])
        else:
            assert not np.array_equal(e_masks[i], masks[i])
            # it stays where it was: the box's centre moves by about a pixel at most
            before, after = (np.add(*np.split(np.array(_mask_bbox(m)), 2)) / 2
                             for m in (masks[i], e_masks[i]))
            assert np.abs(before - after).max() <= 1.5
        if key == "color":
            assert classify_rgb(median_rgb(e_images[i], e_masks[i])) == changes[i]["color"]
        elif key is None:
            # only the noise is new
            assert np.abs(e_images[i].astype(int) - images[i]).mean() < 6
    a, b = (render_edited(params, attrs, changes, 5, size=64)[0] for _ in range(2))
    assert np.array_equal(a, b)
    with pytest.raises(KeyError, match="unknown attribute"):
        render_edited(params, attrs, [{"colour": "red"}] * n, 5, size=64)
    with pytest.raises(ValueError, match="one entry per frame"):
        render_edited(params, attrs, [], 5, size=64)


# ----------------------------------------------------------------------------------------
# Independent set
# ----------------------------------------------------------------------------------------
def test_named_web_colours_inside_their_regions():
    for name, rgbs in NAMED_COLORS.items():
        for rgb in rgbs:
            assert classify_rgb(rgb) == name, (name, rgb)


def test_independent_frames():
    rng = np.random.default_rng(split_seed("independent", 0))
    n = 400
    hits = 0
    for _ in range(n):
        img, mask, info = render_independent_frame(rng)
        assert img.shape == (64, 64, 3) and set(np.unique(mask)) <= {0.0, 1.0}
        assert classify_rgb(info["fill"]) == info["color"]
        if info["outline"] is not None:
            assert classify_rgb(info["outline"]) == info["color"]
            assert sum(info["outline"]) <= sum(info["fill"])
        assert classify_background(info["bg"]) == info["background"]
        hits += classify_rgb(median_rgb(img, mask)) == info["color"]
        # Hard edges: only the fill, outline and background colours appear.
        assert len(np.unique(img.reshape(-1, 3), axis=0)) <= 3
        x0, y0, x1, y1 = _mask_bbox(mask)
        assert abs(max(x1 - x0, y1 - y0) / 2 / 64 - info["radius"]) <= 1.5 / 64
        assert S.size_for_radius(info["radius"]) == info["size"]
    assert hits >= 0.99 * n


def test_independent_scene():
    sc = render_independent_scene(split_seed("independent", 1), 400, 300, 3)
    assert sc.image.shape == (300, 400, 3)
    for i, obj in enumerate(sc.objects):
        x0, y0, x1, y1 = _mask_bbox(obj.mask)
        bx0, by0, bx1, by1 = obj.bbox
        assert max(abs(x0 - bx0), abs(y0 - by0), abs(x1 - bx1), abs(y1 - by1)) <= 1.5
        assert classify_rgb(median_rgb(sc.image, obj.mask)) == obj.attrs["color"]
        box, _ = selection_for(sc, i, "tight")
        assert framed_attrs(sc, i, box)["size"] == "large"


# ----------------------------------------------------------------------------------------
# Framing
# ----------------------------------------------------------------------------------------
def test_framing_inverse_is_identity():
    rng = np.random.default_rng(0)
    fr = BoxFraming(S.framing_factor)
    for _ in range(50):
        x0, y0 = rng.uniform(-50, 500, 2)
        box = (x0, y0, x0 + rng.uniform(5, 300), y0 + rng.uniform(5, 300))
        pts = rng.uniform(-100, 800, size=(20, 2))
        bound = fr.fit(box)
        assert np.allclose(bound.from_frame(bound.to_frame(pts)), pts)
        assert np.allclose(fr.to_frame(fr.from_frame(pts, box), box), pts)
        fx, fy, side = bound.frame_rect()
        assert side == pytest.approx(max(box[2] - box[0], box[3] - box[1]) / S.framing_factor)
        # Centred on the box; the box's centre maps to the frame's centre.
        assert np.allclose(bound.to_frame([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]),
                           [0.5, 0.5])
        assert np.allclose(bound.to_frame([[fx, fy], [fx + side, fy + side]]), [[0, 0], [1, 1]])
        hom = bound.matrix() @ np.c_[pts, np.ones(len(pts))].T
        assert np.allclose(hom[:2].T, bound.to_frame(pts))
    assert BoxFraming.from_dict(fr.to_dict()) == fr
    with pytest.raises(ValueError):
        fr.frame_rect()
    with pytest.raises(ValueError):
        fr.fit((5, 5, 5, 10))


def test_crop_frame_pads_outside_canvas():
    img = np.zeros((20, 30, 3), dtype=np.uint8)
    img[:, :15] = 200
    out = crop_frame(img, (-10.0, -10.0, 40.0), 16)
    assert out.shape == (16, 16, 3)
    assert out[8, 0, 0] == 200 and out[8, -1, 0] == 0


# ----------------------------------------------------------------------------------------
# Scenes
# ----------------------------------------------------------------------------------------
def test_scene_deterministic_and_ground_truth(scenes):
    again = render_scene(split_seed("test", 10), 640, 480, 5)
    assert np.array_equal(again.image, scenes[0].image)
    for sc in scenes:
        for obj in sc.objects:
            assert set(obj.attrs) == {"shape", "color", "background"}
            assert obj.attrs["background"] == sc.background
            assert 2 * obj.radius >= S.min_object_px
            x0, y0, x1, y1 = _mask_bbox(obj.mask, 0.0)
            bx0, by0, bx1, by1 = obj.bbox
            assert max(abs(x0 - bx0), abs(y0 - by0), abs(x1 - bx1), abs(y1 - by1)) <= 1.0
            assert max(bx1 - bx0, by1 - by0) == pytest.approx(2 * obj.radius)
            assert classify_rgb(median_rgb(sc.image, obj.mask)) == obj.attrs["color"]
        everything = sum(o.mask for o in sc.objects)
        assert everything.max() <= 1.0 + 1e-6  # objects never overlap
        assert classify_background(np.median(sc.image[everything == 0], 0)) == sc.background


def test_scene_fixed_attrs_and_errors():
    sc = render_scene(1, 300, 300, 2, objects=[{"shape": "star", "color": "blue"},
                                               {"color": "white"}], background="grey")
    assert sc.background == "grey"
    assert sc.objects[0].attrs["shape"] == "star" and sc.objects[0].attrs["color"] == "blue"
    assert sc.objects[1].attrs["color"] == "white"
    with pytest.raises(ValueError):
        render_scene(1, 60, 60, 1)  # the loosest frame of a 24 px object cannot fit
    with pytest.raises(ValueError):
        render_scene(1, 200, 200, 30)


@pytest.mark.parametrize("looseness,band", [("tight", "large"), ("loose", "small")])
def test_selection_lands_in_size_band(scenes, looseness, band):
    rng = np.random.default_rng(5)
    lo, hi = S.size_bands[band]
    for sc in scenes:
        for i, obj in enumerate(sc.objects):
            for r in (None, rng, rng, rng):
                box, mask = selection_for(sc, i, looseness, rng=r)
                side = BoxFraming(S.framing_factor).fit(box).frame_rect()[2]
                assert lo <= obj.radius / side <= hi
                assert framed_attrs(sc, i, box)["size"] == band
                # The box is the mask's support; the object is selected at full strength.
                assert _mask_bbox(mask, 0) == box
                assert (mask[obj.mask > 0.5] == 255).all()
            fr = frame_of(sc, i, looseness, size=64)
            assert fr.attrs["size"] == band and lo <= fr.radius <= hi
            # Measured in the crop's pixels too.
            x0, y0, x1, y1 = _mask_bbox(fr.object_mask)
            assert lo - 1.5 / 64 <= max(x1 - x0, y1 - y0) / 2 / 64 <= hi + 1.5 / 64
            assert abs(fr.center[0] - 0.5) <= S.center_jitter
            assert abs(fr.center[1] - 0.5) <= S.center_jitter
            assert classify_rgb(median_rgb(fr.image, fr.object_mask, 0.9)) == obj.attrs["color"]


def test_frames_never_touch_other_objects(scenes):
    rng = np.random.default_rng(9)
    for sc in scenes:
        for i, obj in enumerate(sc.objects):
            others = sum((o.mask for j, o in enumerate(sc.objects) if j != i),
                         np.zeros_like(obj.mask))
            reach = frame_reach(obj.radius)
            for looseness in ("tight", "loose"):
                for r in (None, rng, rng):
                    for kind in ("rect", "ellipse"):
                        box, _ = selection_for(sc, i, looseness, kind=kind, rng=r)
                        fx, fy, side = BoxFraming(S.framing_factor).fit(box).frame_rect()
                        assert fx >= 0 and fy >= 0
                        assert fx + side <= sc.width and fy + side <= sc.height
                        if kind == "rect":
                            assert max(abs(fx + side / 2 - obj.center[0]),
                                       abs(fy + side / 2 - obj.center[1])) + side / 2 <= reach
                        x0, y0 = int(np.floor(fx)), int(np.floor(fy))
                        x1, y1 = int(np.ceil(fx + side)), int(np.ceil(fy + side))
                        assert others[y0:y1, x0:x1].max() == 0


def test_ellipse_and_hard_selections(scenes):
    sc = scenes[0]
    for i, obj in enumerate(sc.objects):
        box, mask = selection_for(sc, i, "tight", kind="ellipse")
        assert (mask[obj.mask > 0.0] >= 200).all()
        assert _mask_bbox(mask, 0)[0] >= box[0]
        box, hard = selection_for(sc, i, "loose", soft=False)
        assert set(np.unique(hard)) <= {0, 255}
        assert _mask_bbox(hard, 0) == box
        box_f, _ = selection_for(sc, i, 0.2)
        assert framed_attrs(sc, i, box_f)["size"] is None  # between the bands


# ----------------------------------------------------------------------------------------
# Captions
# ----------------------------------------------------------------------------------------
def test_templates_disjoint_and_cover_attributes():
    assert not set(cap.TRAIN_TEMPLATES) & set(cap.HELDOUT_TEMPLATES)
    for templates in (cap.TRAIN_TEMPLATES, cap.HELDOUT_TEMPLATES):
        mentioned = {f for t in templates for f in cap.template_fields(t)}
        assert mentioned == set(ATTR_KEYS)


def test_parse_prompt_round_trips_captions():
    rng = np.random.default_rng(0)
    for _ in range(200):
        attrs = sample_attrs(rng)
        for t in cap.TRAIN_TEMPLATES + cap.HELDOUT_TEMPLATES:
            text = cap.caption(attrs, t)
            want = {k: attrs[k] for k in cap.template_fields(t)}
            assert cap.parse_prompt(text) == want, text
        assert cap.parse_prompt(cap.random_caption(attrs, rng)).items() <= attrs.items()
        sub = {k: attrs[k] for k in ("color", "shape")}
        assert cap.parse_prompt(cap.prompt_for(sub)) == sub


def test_parse_prompt_examples():
    assert cap.parse_prompt("a green triangle") == {"shape": "triangle", "color": "green"}
    assert cap.parse_prompt("A Blue shape on gray.") == {"color": "blue", "background": "grey"}
    assert cap.parse_prompt("a big violet star") == {"shape": "star", "color": "purple",
                                                     "size": "large"}
    assert cap.parse_prompt("something else entirely") == {}
    assert cap.caption({"color": "orange", "shape": "star"}, "a {color} {shape}") == \
        "an orange star"
    assert cap.prompt_for({"color": "green"}) == "a green shape"
    with pytest.raises(ValueError):
        cap.parse_prompt("a red and blue circle")
    with pytest.raises(KeyError):
        cap.caption({"color": "red"}, "a {color} {shape}")
