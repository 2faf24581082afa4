"""Chapter 02: inside a CNN -- what a trained classifier looks at, and what its units respond to.

Two papers, one idea per module:

- Zeiler & Fergus 2013, "Visualizing and Understanding Convolutional Networks":
  ``deconvnet`` (Sec. 2.1: project one unit back to pixel space through unpooling by switches,
  rectification and transposed filters), ``top_activations`` (Fig. 2: the 9 images that excite each
  unit most, cut to the unit's receptive field) and ``occlusion`` (Sec. 4.2, Fig. 7: slide a grey
  square over the image and watch the correct class's probability).
- Simonyan, Vedaldi & Zisserman 2013, "Deep Inside Convolutional Networks: Visualising Image
  Classification Models and Saliency Maps": ``saliency`` (Sec. 3, Eq. 2-3: M_ij = max_c |w_h(i,j,c)|,
  w = dS_c / dI) and ``localization`` (Sec. 3.2: a box from the saliency map, no box supervision),
  beside a small box regressor trained *with* boxes for comparison.

Every kernel is compared with captum (``tests/test_inside.py``); ``checks`` holds notebook 02's exercises.
"""

from course_lib.inside.deconvnet import deconvnet
from course_lib.inside.localization import (
    BoxRegressor,
    box_from_saliency,
    connected_components,
    pointing_game,
)
from course_lib.inside.occlusion import occlusion, occlusion_maps
from course_lib.inside.saliency import saliency
from course_lib.inside.top_activations import TopActivations, receptive_field, top_activations

__all__ = [
    "BoxRegressor", "TopActivations", "box_from_saliency", "connected_components",
    "deconvnet", "occlusion", "occlusion_maps", "pointing_game", "receptive_field", "saliency",
    "top_activations",
]
