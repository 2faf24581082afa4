"""Results: the numbers a notebook reports, recorded with one call.

``record("test_acc", 0.93)`` shows the number in the notebook and attaches it to the cell output under
the MIME type :data:`MIME`. The runner (``python -m course_lib run``) reads those outputs back from the
executed notebook, so a result can only come from a run; nothing is typed into the results table.
"""

from __future__ import annotations

import math
import numbers

MIME = "application/vnd.course-lib.metric+json"

#: what this process recorded, in order (name -> value); handy outside notebooks
RECORDED: dict[str, float] = {}


def record(name: str, value: float, fmt: str = ".4g") -> float:
    """Record the metric ``name`` = ``value`` (a finite real number) and display it."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"metric name must be an identifier like 'test_acc', got {name!r}")
    if hasattr(value, "item"):
        n = value.numel() if hasattr(value, "numel") else int(getattr(value, "size", 1))  # torch / numpy
        if n != 1:
            raise ValueError(f"metric {name!r} must be one number, got an array of shape {tuple(value.shape)}")
        value = value.item()
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"metric {name!r} must be a finite real number, got {value!r}")
    value = float(value)
    RECORDED[name] = value
    text = f"recorded {name} = {value:{fmt}}"
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python: just print
        print(text)
        return value
    if get_ipython() is None:
        print(text)
    else:
        display({MIME: {"name": name, "value": value}, "text/plain": text}, raw=True)
    return value


def metrics_from_notebook(nb: dict) -> dict[str, float]:
    """The metrics recorded in an executed notebook (a dict as nbformat reads it), in order."""
    found: dict[str, float] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data", {})
            if MIME in data:
                found[data[MIME]["name"]] = float(data[MIME]["value"])
    return found
