#!/usr/bin/env python3
"""Wordbrush for GIMP 3: Filters > Wordbrush > Edit Selection from Text…

The GIMP glue only: it registers the procedure, shows its dialog, and gives
``wordbrush_core.edit_selection`` access to the image through :class:`GimpImage`. The
procedure also runs NONINTERACTIVE with its arguments (batch mode, Script-Fu, the Python
console) and remembers the last values. Every failure returns an error status with a
sentence GIMP shows to the user.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for extra in (HERE / "vendor", HERE):
    if extra.is_dir() and str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GimpUi, GLib, GObject  # noqa: E402

GObjectParam = GObject.ParamFlags

PROC = "plug-in-wordbrush-edit-selection"
MISSING = None
try:
    import msgpack  # noqa: F401
    import zmq  # noqa: F401
    from wordbrush_core import EditOptions, PluginError, edit_selection, load_settings

    from protocol.engines import engine_list
    from protocol.regions import Box
except ImportError as exc:  # the plug-in still registers, and says what to run
    MISSING = (f"wordbrush cannot run: {exc}. Run `python3 install.py` in the wordbrush "
               "folder to put pyzmq, msgpack and the protocol next to this plug-in.")

class GimpImage:
    """The GimpHost of wordbrush_core over one image and drawable."""

    def __init__(self, image: Gimp.Image, drawable: Gimp.Drawable) -> None:
        self.image, self.drawable = image, drawable

    def precision(self) -> str:
        return self.image.get_precision().value_nick  # e.g. "u8-non-linear"

    def own_profile(self) -> bool:
        """A profile other than sRGB. None is GIMP's built-in sRGB (also what an assigned
        built-in sRGB reads as); an embedded sRGB ICC (exported JPEGs carry one) is known
        by its name, since its bytes need not be GIMP's."""
        profile = self.image.get_color_profile()
        if profile is None:
            return False
        builtin = (Gimp.ColorProfile.new_rgb_srgb(), Gimp.ColorProfile.new_rgb_srgb_linear())
        if any(profile.is_equal(srgb) for srgb in builtin):
            return False
        return "srgb" not in (profile.get_label() or "").lower()

    def is_rgb(self) -> bool:
        return self.image.get_base_type() == Gimp.ImageBaseType.RGB

    def gone(self) -> str | None:
        if not self.image.is_valid():
            return "the image was closed during the edit"
        if not self.drawable.is_valid():
            return "the layer was deleted during the edit"
        if not self.is_rgb():
            return "the image was converted out of RGB during the edit"
        return None

    def drawable_box(self) -> Box:
        _, x, y = self.drawable.get_offsets()
        return Box(x, y, self.drawable.get_width(), self.drawable.get_height())

    def selection_box(self) -> Box | None:
        _, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(self.image)
        return Box(x1, y1, x2 - x1, y2 - y1) if non_empty else None

    def _rect(self, box: Box, relative: bool) -> Gegl.Rectangle:
        if relative:
            _, ox, oy = self.drawable.get_offsets()
            return Gegl.Rectangle.new(box.x - ox, box.y - oy, box.w, box.h)
        return Gegl.Rectangle.new(box.x, box.y, box.w, box.h)

    def read_pixels(self, box: Box, babl: str) -> bytes:
        buffer = self.drawable.get_buffer()
        return bytes(buffer.get(self._rect(box, True), 1.0, babl, Gegl.AbyssPolicy.CLAMP))

    def read_mask(self, box: Box) -> bytes:
        buffer = self.image.get_selection().get_buffer()
        return bytes(buffer.get(self._rect(box, False), 1.0, "Y u8", Gegl.AbyssPolicy.NONE))

    def add_layers(self, names, patches, babl, group_name) -> None:
        """One undo step; all the layers or none (what was inserted goes again)."""
        self.image.undo_group_start()
        inserted = None
        try:
            parent = self.drawable.get_parent()
            position = self.image.get_item_position(self.drawable)
            target_parent = parent
            if group_name is not None:
                group = Gimp.GroupLayer.new(self.image, group_name)
                if group is None or not self.image.insert_layer(group, parent, position):
                    raise PluginError("GIMP refused the new layer group (is the layer's "
                                      "group locked?); nothing was added")
                inserted, target_parent, position = group, group, 0
            for i, (name, (data, box)) in enumerate(zip(names, patches, strict=True)):
                layer = Gimp.Layer.new(self.image, name, box.w, box.h,
                                       Gimp.ImageType.RGBA_IMAGE, 100.0,
                                       Gimp.LayerMode.NORMAL)
                if layer is None or not self.image.insert_layer(layer, target_parent,
                                                                position + i):
                    raise PluginError("GIMP refused the new layer (is the layer's group "
                                      "locked?); nothing was added")
                inserted = inserted or layer
                layer.set_offsets(box.x, box.y)
                buffer = layer.get_buffer()
                buffer.set(Gegl.Rectangle.new(0, 0, box.w, box.h), babl, data)
                buffer.flush()
                layer.update(0, 0, box.w, box.h)
                layer.set_visible(i == 0)
        except BaseException:
            if inserted is not None:
                self.image.remove_layer(inserted)  # a group goes with what it holds
            raise
        finally:
            self.image.undo_group_end()
        # GIMP selects an inserted layer; the source stays selected instead, as in Krita,
        # so the next edit (or Filters > Repeat) works on the painting, not on a patch
        self.image.set_selected_layers([self.drawable])
        Gimp.displays_flush()

    def progress(self, fraction: float, text: str) -> None:
        Gimp.progress_set_text(text)
        Gimp.progress_update(max(0.0, min(1.0, fraction)))


class Wordbrush(Gimp.PlugIn):
    def do_query_procedures(self):
        return [PROC]

    def do_create_procedure(self, name):
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run, None)
        proc.set_image_types("RGB*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        proc.set_menu_label("Edit Selection from _Text…")
        proc.add_menu_path("<Image>/Filters/Wordbrush")
        proc.set_documentation("Edit the selection from a text description",
                               "Sends the active layer around the selection and the "
                               "selection to the wordbrush engine; the result comes back as "
                               "new layers above it. Existing pixels are never modified.",
                               name)
        proc.set_attribution("wordbrush", "wordbrush", "2026")
        proc.add_string_argument("prompt", "_Prompt", "what the selection should become",
                                 "", GObjectParam.READWRITE)
        proc.add_string_argument("method", "_Method", "edit method id (empty: the engine's "
                                 "default)", "", GObjectParam.READWRITE)
        proc.add_double_argument("strength", "_Strength", "how strong the edit is; -1: "
                                 "automatic (the engine chooses, and says which)", -1.0, 2.0,
                                 -1.0, GObjectParam.READWRITE)
        proc.add_int_argument("variations", "_Variations", "results to make", 1, 8, 1,
                              GObjectParam.READWRITE)
        proc.add_int_argument("seed", "S_eed", "-1 for a random seed", -1, 2**31 - 1, -1,
                              GObjectParam.READWRITE)
        engines = "local" if MISSING is not None else \
            ", ".join(e.name for e in engine_list(load_settings(HERE)))
        proc.add_string_argument("engine", "E_ngine", f"a named engine ({engines}; empty: the "
                                 "one in use, set by install.py --endpoint)", "",
                                 GObjectParam.READWRITE)
        proc.add_string_argument("endpoint", "_Endpoint", "engine address, instead of a named "
                                 "engine (empty: the named one)", "", GObjectParam.READWRITE)
        proc.add_string_argument("pack", "Model p_ack", "model pack (empty: the engine's "
                                 "default)", "", GObjectParam.READWRITE)
        proc.add_string_argument("params", "Method _options", "NAME=VALUE pairs for the "
                                 "method, e.g. steps=60 keep_unnamed=false (empty: its "
                                 "defaults; `wordbrush info` lists them)", "",
                                 GObjectParam.READWRITE)
        return proc

    def run(self, procedure, run_mode, image, drawables, config, data):
        if MISSING is not None:
            return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR,
                                               GLib.Error(MISSING))
        if len(drawables) != 1:
            return procedure.new_return_values(
                Gimp.PDBStatusType.CALLING_ERROR,
                GLib.Error("select exactly one layer to edit"))
        if not isinstance(drawables[0], Gimp.Layer):  # a layer mask is a channel
            return procedure.new_return_values(
                Gimp.PDBStatusType.CALLING_ERROR,
                GLib.Error("select a layer to edit, not a layer mask or a channel"))
        if run_mode == Gimp.RunMode.INTERACTIVE:
            GimpUi.init("wordbrush")
            dialog = GimpUi.ProcedureDialog.new(procedure, config, "Wordbrush")
            dialog.fill(None)
            if not dialog.run():
                dialog.destroy()
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
            dialog.destroy()
        options = EditOptions(
            prompt=config.get_property("prompt") or "",
            method=config.get_property("method") or "",
            strength=config.get_property("strength"),
            variations=config.get_property("variations"),
            seed=config.get_property("seed"),
            endpoint=config.get_property("endpoint") or "",
            pack=config.get_property("pack") or "",
            params_text=config.get_property("params") or "",
            engine=config.get_property("engine") or "").with_settings(load_settings(HERE))
        Gimp.progress_init("Wordbrush: editing the selection")
        try:
            text = edit_selection(GimpImage(image, drawables[0]), options)
        except PluginError as exc:
            return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR,
                                               GLib.Error(str(exc)))
        except Exception as exc:
            return procedure.new_return_values(
                Gimp.PDBStatusType.EXECUTION_ERROR,
                GLib.Error(f"wordbrush failed unexpectedly: {type(exc).__name__}: {exc}"))
        finally:
            Gimp.progress_end()
        Gimp.message(f"Wordbrush: {text}")
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


Gimp.main(Wordbrush.__gtype__, sys.argv)
