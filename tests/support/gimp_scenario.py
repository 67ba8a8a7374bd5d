"""Runs inside GIMP 3 (``gimp-console-3.0 -i --batch-interpreter python-fu-eval``).

``/wb/args.json`` says what to do: open the scene, select with the mask, run the
wordbrush procedure NONINTERACTIVE (and once more against an engine that is not running),
then write ``/wb/result.json`` and the flattened image ``/wb/after.png``.
"""

import json
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

OUT = "/wb"


class _Done(Exception):
    """The scenario asked for its first run only."""


def _procedure(name, image, layer, **properties):
    """Run procedure ``name`` NONINTERACTIVE on ``layer`` with ``properties`` set."""
    proc = Gimp.get_pdb().lookup_procedure(name)
    if proc is None:
        return {"registered": False}
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", [layer])
    for key, value in properties.items():
        cfg.set_property(key, value)
    status = proc.run(cfg).index(0)
    message = ""
    if status != Gimp.PDBStatusType.SUCCESS:
        message = Gimp.PDB.get_last_error(Gimp.get_pdb()) if hasattr(Gimp.PDB, "get_last_error") \
            else ""
    return {"registered": True, "success": status == Gimp.PDBStatusType.SUCCESS,
            "status": str(status), "message": str(message)}


def _run(image, layer, prompt, endpoint, variations=1, params="", method="paint-by-word",
         pack="demo"):
    return _procedure("plug-in-wordbrush-edit-selection", image, layer, prompt=prompt,
                      method=method, seed=1, endpoint=endpoint, pack=pack,
                      variations=variations, params=params)


def _run_on_layer(name, image, layer):
    """One of the variation procedures on ``layer``."""
    return _procedure(name, image, layer)


def main():
    with open(f"{OUT}/args.json") as f:
        args = json.load(f)
    result = {}
    try:
        image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(args["scene"]))
        layer = image.get_layers()[0]
        mask_img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE,
                                  Gio.File.new_for_path(args["mask"]))
        mask_layer = mask_img.get_layers()[0]
        w, h = image.get_width(), image.get_height()
        rect = Gegl.Rectangle.new(0, 0, w, h)
        mask = mask_layer.get_buffer().get(rect, 1.0, "Y u8", Gegl.AbyssPolicy.NONE)
        selection = image.get_selection()
        buf = selection.get_buffer()
        buf.set(rect, "Y u8", mask)
        buf.flush()
        selection.update(0, 0, w, h)
        deep = image.duplicate()  # for the 16-bit run below, before any edit
        profiled = image.duplicate()  # an embedded sRGB profile, as exported JPEGs carry
        profiled.set_color_profile(Gimp.ColorProfile.new_rgb_srgb())
        before = bytes(layer.get_buffer().get(rect, 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE))
        which = {"method": args.get("method", "paint-by-word"), "pack": args.get("pack", "demo")}
        result["run"] = _run(image, layer, args["prompt"], args["endpoint"], **which)
        layers = image.get_layers()
        result["layers"] = [item.get_name() for item in layers]
        result["original_unchanged"] = bytes(
            layer.get_buffer().get(rect, 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE)) == before
        new = [item for item in layers if item.get_name().startswith("[wordbrush]")]
        result["selected_after"] = [item.get_name() for item in image.get_selected_layers()]
        if new:
            result["new_above_source"] = layers.index(new[0]) == layers.index(layer) - 1
            _, ox, oy = new[0].get_offsets()
            nw, nh = new[0].get_width(), new[0].get_height()
            pix = new[0].get_buffer().get(Gegl.Rectangle.new(0, 0, nw, nh), 1.0,
                                         "R'G'B'A u8", Gegl.AbyssPolicy.NONE)
            outside = 0
            for y in range(nh):
                for x in range(nw):
                    if mask[(oy + y) * w + ox + x] == 0 and pix[(y * nw + x) * 4 + 3]:
                        outside += 1
            result["outside_alpha_nonzero"] = outside
        if args.get("first_only"):  # a face pack's one edit: the checks above are enough
            raise _Done
        profiled_layer = profiled.get_layers()[0]
        result["profiled"] = _run(profiled, profiled_layer, args["prompt"], args["endpoint"])
        result["profiled_layers"] = [item.get_name() for item in profiled.get_layers()]
        # GIMP keeps no profile of its own for an assigned built-in sRGB
        profile = profiled.get_color_profile()
        result["profiled_label"] = None if profile is None else profile.get_label()
        count = len(image.get_layers())
        result["dead"] = _run(image, layer, args["prompt"], args["dead_endpoint"])
        result["dead_layers_unchanged"] = len(image.get_layers()) == count
        # a 16-bit copy with two variations: one layer group with two layers above the source
        deep.convert_precision(Gimp.Precision.U16_NON_LINEAR)
        deep_layer = next(item for item in deep.get_layers() if item.get_name() == "Background")
        deep_before = bytes(deep_layer.get_buffer().get(rect, 1.0, "R'G'B'A u16",
                                                        Gegl.AbyssPolicy.NONE))
        result["deep"] = _run(deep, deep_layer, args["prompt"], args["endpoint"], variations=2,
                              params="preview_every=10, keep_unnamed=true")
        top = deep.get_layers()[0]
        result["deep_group"] = {
            "name": top.get_name(), "type": type(top).__name__,
            "is_group": bool(top.is_group()),
            "children": [c.get_name() for c in top.get_children()] if top.is_group() else [],
            "top": [item.get_name() for item in deep.get_layers()],
            "precision": str(deep.get_precision()),
        }
        result["deep_original_unchanged"] = bytes(deep_layer.get_buffer().get(
            rect, 1.0, "R'G'B'A u16", Gegl.AbyssPolicy.NONE)) == deep_before
        # step to the second variation, then keep it: it takes the group's place
        if top.is_group():
            children = top.get_children()
            second = bytes(children[1].get_buffer().get(
                Gegl.Rectangle.new(0, 0, children[1].get_width(), children[1].get_height()),
                1.0, "R'G'B'A u16", Gegl.AbyssPolicy.NONE))
            result["next"] = _run_on_layer("plug-in-wordbrush-next-variation", deep, top)
            result["shown_after_next"] = [c.get_visible() for c in top.get_children()]
            result["not_a_group"] = _run_on_layer("plug-in-wordbrush-keep-variation", deep,
                                                  deep_layer)
            result["keep"] = _run_on_layer("plug-in-wordbrush-keep-variation", deep, top)
            result["after_keep"] = [[item.get_name(), bool(item.is_group()),
                                     bool(item.get_visible())] for item in deep.get_layers()]
            kept = deep.get_layers()[0]
            result["kept_pixels_equal"] = bytes(kept.get_buffer().get(
                Gegl.Rectangle.new(0, 0, kept.get_width(), kept.get_height()), 1.0,
                "R'G'B'A u16", Gegl.AbyssPolicy.NONE)) == second
        Gimp.Selection.none(image)
        flat = image.duplicate()
        flat.flatten()
        Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, flat, Gio.File.new_for_path(
            f"{OUT}/after.png"), None)
    except _Done:
        pass
    except Exception:
        result["exception"] = traceback.format_exc()
    with open(f"{OUT}/result.json", "w") as f:
        json.dump(result, f, indent=2)


main()
