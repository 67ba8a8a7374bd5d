#!/usr/bin/env python3
"""Wordbrush for GIMP 3: Filters > Wordbrush > Edit Selection from Text…, Show Next
Variation and Keep Shown Variation.

The GIMP glue only: it registers the procedures, shows the edit's dialog (which stays open
while the edit runs, with a progress bar, the method's preview and Cancel), and gives
``wordbrush_core`` access to the image through :class:`GimpImage`. The procedures also run
NONINTERACTIVE with their arguments (batch mode, Script-Fu, the Python console) and
remember the last values. Every failure returns an error status with a sentence GIMP shows
to the user.
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
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from gi.repository import GdkPixbuf, Gegl, Gimp, GimpUi, GLib, GObject, Gtk  # noqa: E402

GObjectParam = GObject.ParamFlags

PROC = "plug-in-wordbrush-edit-selection"
PROC_NEXT = "plug-in-wordbrush-next-variation"
PROC_KEEP = "plug-in-wordbrush-keep-variation"
#: the dialog's preview, at most this many pixels on a side
PREVIEW_PX = 192
MISSING = None
try:
    import msgpack  # noqa: F401
    import zmq  # noqa: F401
    from wordbrush_core import (
        LAYER_PREFIX,
        NOT_A_GROUP,
        EditOptions,
        PluginError,
        edit_selection,
        load_settings,
        variation_to_keep,
        variation_to_show,
    )

    from protocol.engines import engine_list
    from protocol.regions import Box
except ImportError as exc:  # the plug-in still registers, and says what to run
    MISSING = (f"wordbrush cannot run: {exc}. Run `python3 install.py` in the wordbrush "
               "folder to put pyzmq, msgpack and the protocol next to this plug-in.")

class RunView:
    """The edit's dialog kept open while the edit runs: its fields greyed, a progress bar
    and the method's preview below them, and Cancel, which stops the job. GIMP's own
    progress (the status bar) is updated as well."""

    def __init__(self, dialog: Gtk.Dialog) -> None:
        import threading

        self.dialog, self.cancel = dialog, threading.Event()
        area = dialog.get_content_area()
        buttons = dialog.get_action_area()  # inside the content area here: Cancel stays
        for child in area.get_children():
            if child is not buttons and not buttons.is_ancestor(child):
                child.set_sensitive(False)
        for button in buttons.get_children():  # all but Cancel (Reset, Help, OK) greyed
            if dialog.get_response_for_widget(button) != Gtk.ResponseType.CANCEL:
                button.set_sensitive(False)
        self.bar = Gtk.ProgressBar(show_text=True, text="sending the selection…")
        self.image = Gtk.Image()
        self.image.set_size_request(PREVIEW_PX, PREVIEW_PX)
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6, margin=6)
        box.pack_start(self.image, False, False, 0)
        box.pack_start(self.bar, False, False, 0)
        area.pack_end(box, False, False, 0)
        dialog.connect("response", self._response)
        dialog.connect("delete-event", self._close)
        box.show_all()
        self.idle()

    def _response(self, _dialog: Gtk.Dialog, response: int) -> None:
        if response != Gtk.ResponseType.OK:
            self.cancel.set()
            self.bar.set_text("cancelling…")

    def _close(self, *_: object) -> bool:
        self.cancel.set()
        return True  # the dialog goes when the engine has stopped the job

    def progress(self, fraction: float, text: str) -> None:
        if not self.cancel.is_set():
            self.bar.set_fraction(fraction)
            self.bar.set_text(text)
        self.idle()

    def preview(self, width: int, height: int, rgba8: bytes) -> None:
        pixbuf = GdkPixbuf.Pixbuf.new_from_bytes(GLib.Bytes.new(rgba8),
                                                 GdkPixbuf.Colorspace.RGB, True, 8,
                                                 width, height, width * 4)
        scale = PREVIEW_PX / max(width, height)
        self.image.set_from_pixbuf(pixbuf.scale_simple(
            max(1, round(width * scale)), max(1, round(height * scale)),
            GdkPixbuf.InterpType.BILINEAR))
        self.idle()

    def idle(self) -> None:
        while Gtk.events_pending():
            Gtk.main_iteration_do(False)

    def close(self) -> None:
        self.dialog.destroy()
        self.idle()


class GimpImage:
    """The GimpHost of wordbrush_core over one image and drawable (and the open dialog,
    when the edit was started from it)."""

    def __init__(self, image: Gimp.Image, drawable: Gimp.Drawable,
                 view: RunView | None = None) -> None:
        self.image, self.drawable, self.view = image, drawable, view

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
        fraction = max(0.0, min(1.0, fraction))
        Gimp.progress_set_text(text)
        Gimp.progress_update(fraction)
        if self.view is not None:
            self.view.progress(fraction, text)

    def preview(self, width: int, height: int, rgba8: bytes) -> None:
        if self.view is not None:
            self.view.preview(width, height, rgba8)

    def idle(self) -> None:
        if self.view is not None:
            self.view.idle()


def _variations_group(layer: Gimp.Layer) -> tuple[Gimp.Layer, int | None]:
    """The variations group ``layer`` is (None) or is a variation of (its index)."""
    if layer.is_group() and layer.get_name().startswith(LAYER_PREFIX):
        return layer, None
    parent = layer.get_parent()
    if parent is not None and parent.get_name().startswith(LAYER_PREFIX):
        ids = [child.get_id() for child in parent.get_children()]
        return parent, ids.index(layer.get_id())
    raise PluginError(NOT_A_GROUP)


def show_next_variation(image: Gimp.Image, layer: Gimp.Layer) -> None:
    group, _ = _variations_group(layer)
    children = group.get_children()
    show = variation_to_show([child.get_visible() for child in children])
    image.undo_group_start()
    try:
        for i, child in enumerate(children):
            child.set_visible(i == show)
    finally:
        image.undo_group_end()


def keep_variation(image: Gimp.Image, layer: Gimp.Layer) -> None:
    """The kept variation takes the group's place; the group goes with the others. One
    undo step."""
    group, selected = _variations_group(layer)
    children = group.get_children()
    kept = children[variation_to_keep([child.get_visible() for child in children], selected)]
    image.undo_group_start()
    try:
        kept.set_visible(True)
        image.reorder_item(kept, group.get_parent(), image.get_item_position(group))
        image.remove_layer(group)
    finally:
        image.undo_group_end()
    image.set_selected_layers([kept])


class Wordbrush(Gimp.PlugIn):
    def do_query_procedures(self):
        return [PROC, PROC_NEXT, PROC_KEEP]

    def do_create_procedure(self, name):
        if name != PROC:
            return self._variation_procedure(name)
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
        proc.add_double_argument("strength", "Str_ength", "how strong the edit is; -1: "
                                 "automatic (the engine chooses, and says which)", -1.0, 2.0,
                                 -1.0, GObjectParam.READWRITE)
        proc.add_int_argument("variations", "_Variations", "results to make", 1, 8, 1,
                              GObjectParam.READWRITE)
        proc.add_int_argument("seed", "See_d", "-1 for a random seed", -1, 2**31 - 1, -1,
                              GObjectParam.READWRITE)
        engines = "local" if MISSING is not None else \
            ", ".join(e.name for e in engine_list(load_settings(HERE)))
        proc.add_string_argument("engine", "E_ngine", f"a named engine ({engines}; empty: the "
                                 "one in use, set by install.py --endpoint)", "",
                                 GObjectParam.READWRITE)
        proc.add_string_argument("endpoint", "Endpoin_t", "engine address, instead of a named "
                                 "engine (empty: the named one)", "", GObjectParam.READWRITE)
        proc.add_string_argument("pack", "Model p_ack", "model pack (empty: the engine's "
                                 "default)", "", GObjectParam.READWRITE)
        proc.add_string_argument("params", "Method opt_ions", "NAME=VALUE pairs for the "
                                 "method, e.g. steps=60 keep_unnamed=false (empty: its "
                                 "defaults; `wordbrush info` lists them)", "",
                                 GObjectParam.READWRITE)
        return proc

    def _variation_procedure(self, name):
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN,
                                       self.run_variation, None)
        proc.set_image_types("RGB*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        proc.set_attribution("wordbrush", "wordbrush", "2026")
        if name == PROC_NEXT:
            proc.set_menu_label("Show _Next Variation")
            proc.set_documentation("Show the next of an edit's variations alone",
                                   "With a wordbrush variations group (or one of its layers) "
                                   "selected: hides the variation shown and shows the next.",
                                   name)
        else:
            proc.set_menu_label("_Keep Shown Variation")
            proc.set_documentation("Keep one of an edit's variations, remove the others",
                                   "With a wordbrush variations group selected: keeps the "
                                   "variation shown (or the one selected) in the group's "
                                   "place and removes the group with the others, in one "
                                   "undo step.", name)
        proc.add_menu_path("<Image>/Filters/Wordbrush")  # after the label, as GIMP asks
        return proc

    def run_variation(self, procedure, run_mode, image, drawables, config, data):
        if MISSING is not None:
            return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR,
                                               GLib.Error(MISSING))
        try:
            if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
                raise PluginError(NOT_A_GROUP)
            act = show_next_variation if procedure.get_name() == PROC_NEXT else keep_variation
            act(image, drawables[0])
        except PluginError as exc:
            return procedure.new_return_values(Gimp.PDBStatusType.CALLING_ERROR,
                                               GLib.Error(str(exc)))
        # no message: the Layers dock shows what changed, and a dialog at every step
        # through the variations would stand in the way
        Gimp.displays_flush()
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())

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
        view = None
        if run_mode == Gimp.RunMode.INTERACTIVE:
            GimpUi.init("wordbrush")
            dialog = GimpUi.ProcedureDialog.new(procedure, config, "Wordbrush")
            dialog.fill(None)
            if not dialog.run():
                dialog.destroy()
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
            view = RunView(dialog)  # open until the edit ends: progress, preview, Cancel
        Gimp.progress_init("Wordbrush: editing the selection")
        try:
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
            text = edit_selection(GimpImage(image, drawables[0], view), options,
                                  cancel=view.cancel if view is not None else None)
        except PluginError as exc:
            if view is not None and view.cancel.is_set():  # the artist's Cancel: no error
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
            return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR,
                                               GLib.Error(str(exc)))
        except Exception as exc:
            return procedure.new_return_values(
                Gimp.PDBStatusType.EXECUTION_ERROR,
                GLib.Error(f"wordbrush failed unexpectedly: {type(exc).__name__}: {exc}"))
        finally:
            Gimp.progress_end()
            if view is not None:
                view.close()
        Gimp.message(f"Wordbrush: {text}")
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


Gimp.main(Wordbrush.__gtype__, sys.argv)
