"""course_lib: the code the course notebooks import.

One small package per chapter (``course_lib.cnn``, ...) plus a shared core:

- ``profiles``    the smoke / cpu / gpu switch and per-notebook size dataclasses
- ``data``        Fashion-MNIST (offline first) and the generated Fashion scenes
- ``checkpoints`` load-by-name: shipped -> cached -> trained, safetensors + sha256 manifest
- ``results``     ``record(name, value)``: the numbers a notebook reports
- ``runner``      ``python -m course_lib run``: executes notebooks with papermill
- ``plots``, ``widgets``, ``utils`` (seeding, device, AMP)
- ``metrics``     features of the Fashion-MNIST judge classifier, FID, the judge's class histogram
- ``resume``      resumable training state (killed runs continue where they stopped)

Chapters: ``cnn`` (01), ``inside`` (02), ``detection`` (03, and the boxes / NMS / mAP of 04-05), ``yolo`` (04),
``maskrcnn`` (05), ``autoencoders`` (06), ``vae`` (07), ``vq`` (08), ``gans`` (09-10), ``translation`` (11),
``diffusion`` (12-13), ``guidance`` and ``text`` (14-15), ``transformers`` (16-18), ``dalle`` (19-20).

Shape glossary used in every docstring and comment:

    B  batch size                  N, M  number of items (images, boxes)
    C  channels                    H, W  height, width
    D  feature / embedding width   K     number of classes, codes or proposals
    T  time steps or tokens
"""

from course_lib.results import record
from course_lib.utils import setup

__all__ = ["record", "setup"]
__version__ = "0.1.0"
