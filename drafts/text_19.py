# Prose of notebook 19 that discusses measured numbers (cpu profile); checked against the run's outputs.

nll = """
A hundred steps already teach the fresh model the captions (their loss falls from 3.7 to about 0.5 nats: the
templates are few) and take the image tokens from 5.0 towards 3.3 nats; the shipped model's 6,000 steps go much
further. On 500 captioned test images it needs **2.62 bits per image token**, where knowing only which codes are
frequent at each position needs 5.63 and a uniform guess 7. The caption is doing real work: the same model handed
another image's caption needs 5.88 bits, worse than the per-position counts, because it confidently predicts the
wrong garment. (Most of the 2.62 bits are not about the garment at all: many of the tokenizer's 128 codes decode to
nearly the same patch, as chapter 18 found, so which of them an image used is partly a coin toss.)
"""

samples = """
Every row reads its caption: dresses for the dress, small sneakers sitting on the left, large dark bags filling
the frame, a small light coat near the top, trousers, ankle boots on the right. Within a row the samples vary
(strap or no strap on the bags, the shape of the trouser legs), which is what sampling at temperature 1 buys.
The 36 images took under a second: 49 forward passes of a 4-layer transformer, each for all 36 at once.
"""

sweep = """
At temperature 1 the samples match their caption's garment 72.4 % of the time (chance 10 %), and size, brightness
and position practically always (0.996 to 1.000). The knobs trade variety for fidelity, as guidance did in chapter
14: top-k 32 at temperature 1 cuts off the tail of unlikely tokens and improves both numbers (class 0.736, FID 2.10
from 2.29); lowering the temperature to 0.7 raises the class accuracy to 0.792, and with top-k 8 to **0.820**, the
best here (the cpu target, 80 %, is met), at a worse FID (2.43 to 2.48): sharpened samples are more typical of their
class and less varied than real images. Compare the references: the judge recognises 89.8 % of the real test
images, and 81.4 % of their own tokens decoded; the best setting's samples reach that second number, because
low-temperature samples are prototypical items, easier to classify than the real ones, while their FID (2.43)
stays above that of the decoded real tokens (1.53). The floor of FID with 500 images, real against real, is 0.86.
One sample per caption leaves each class accuracy a standard error of about 1.8 points, so the step from T=0.7 to
T=0.7 with top-k 8 (2.8 points) is suggestive, while the whole gain from plain sampling (9.6 points) is not in
doubt. Chapter 15's latent diffusion, graded the same way on 300 captions, reached class 0.877 at FID 2.43 (floor
2.32 with 300 images; FID grows as the sample shrinks, so only the gaps to each floor compare): diffusion with
guidance matches the captions better than this small DALL·E and is closer to real images: 0.11 above its
floor, against 1.57 here.
"""

rerank = """
Reranking pays far more than the sampling knobs: of 200 captions, the first of 8 samples shows the right garment
82.5 % of the time, CLIP's favourite of the 8 **97.0 %** (+14.5 points), and at least one of the 8 is right for
99.5 % of the captions, so CLIP finds the right one almost whenever it exists. CLIP never saw the caption judge or
a class label, only (image, caption) pairs. The price is compute: 8 samples per caption instead of one, and
DALL·E drew 512. In the figure, where the 8 candidates look alike (rows 0, 3, 5) their cosines lie within a few
hundredths, but for one candidate of row 3 (0.82), and the pick hardly matters; where they differ in shape (rows 1 and 4) the scores spread from 0.66 to
0.91 and from 0.76 to 0.95.
"""
