"""Widgets that also read well headless.

In a live JupyterLab or Colab frontend :func:`interactive` shows ipywidgets controls bound to a drawing
function. Executed headless (the runner and the tests set ``COURSE_HEADLESS=1``), no frontend would
render the widget, so it calls the function once with the controls' default values instead: the
committed notebook then shows a static figure of the default.
"""

from __future__ import annotations

import os
from typing import Callable


def headless() -> bool:
    return os.environ.get("COURSE_HEADLESS") == "1"


def interactive(draw: Callable[..., object], **controls):
    """Bind ``draw(**values)`` to ipywidgets ``controls`` (name -> widget); headless: draw the defaults."""
    import ipywidgets as widgets

    bad = [name for name, w in controls.items() if not isinstance(w, widgets.ValueWidget)]
    if bad:
        raise TypeError(f"controls must be ipywidgets value widgets; not: {bad}")
    if headless():
        return draw(**{name: w.value for name, w in controls.items()})
    return widgets.interactive(draw, **controls)
