# Prose of notebook 20 that discusses measured numbers (cpu profile); checked against the run's outputs.

clip = """
A hundred steps take the fresh CLIP from about 5.9 nats to about 1.6. The shipped one (3,000 steps, 6 minutes, its
learned scale grown from 14 to 20) never saw a class label, yet the bare prompt "a photo of a {class}" classifies
81.4 % of the 10,000 captioned test images, and the **prompt ensemble 85.1 %** (+3.7 points; chance 10 %). For
scale, the caption judge, a ResNet trained on the labels, recognises about 90 % of such images (the "real images"
row of section 3). The ensemble helps for the reason given above: no training caption is bare, and averaging over
sizes and brightnesses puts a class's prompt where that class's images actually lie (the CLIP paper averages 80
prompts on ImageNet for the same reason).

Retrieval looks poor at first sight, recall@1 of 0.153 image → caption and 0.086 caption → image, but chance is
0.001 and the ceiling far below 1: the 1,000 captions say only 100 different things (511 different strings), so
an oracle that reads every attribute perfectly reaches 0.215 and 0.100. Our CLIP gets 71 % and 86 % of the way.
The similarity matrix shows why: captions 0 and 5 are both "large dark trousers", so images 0 and 5 light up both
columns equally.
"""

prior = """
The caption's own text embedding has cosine similarity 0.879 with the true image embedding: close, since CLIP
pulled matching pairs together, but not the same point. One sample of the diffusion prior lands at **0.918**,
above the retrieval prior's 0.900 (the image embedding of the training image whose caption is nearest, among
20,000). So the prior does what the paper asks of it: it maps from where captions lie to where images lie. The
retrieval baseline is strong here because captions repeat: the nearest training caption usually says exactly the
same thing, and its image is a real image of that description; the prior does better by producing an embedding
typical of all such images rather than of one of them.
"""

decoder = """
The decoder gives back what the embedding keeps: the garment, its size, its brightness and where it sits. The
details are reinvented: the sandal's straps, the print on the tee, the bag's pattern. 64 numbers cannot hold a
784-pixel image, and CLIP was trained to keep only what captions can tell apart, which is what DALL·E 2's
variations (section 4) are built on.
"""

samples = """
At guidance scale 3, caption → prior → decoder draws the caption's garment in **86.0 %** of 300 samples (the cpu
target, 80 %, is met; the standard error is about 2 points), puts it where the caption says (1.000) and as bright
(1.000), and gets its size right in 95.3 %. Without guidance (scale 1) the decoder follows the embedding less
closely: class 76.3 %, size 88.7 %, FID 3.53 against 2.15 at scale 3, on a floor of 1.84 (real images against
another draw of 300). The real images themselves reach 89.7 % with the judge. Decoding the *true* image embeddings
gives about the same as the prior's samples (84.7 %, within a standard error), so at this size the prior is not the
bottleneck: the decoder and what CLIP's 64 numbers keep are. On the same kind of captions and judge, chapter 19's
DALL·E reached 82.0 % at its best temperature and top-k, and chapter 15's latent diffusion 87.7 % at scale 3: three
routes from text to image, within a few points of each other. The 900 samples took 222 s in this run, each DDIM step calling
the decoder twice for guidance.
"""

variations = """
The variations keep the garment, its brightness, size and place, and change its details: the width of the trouser
legs, the jacket's outline and the marks on it. This is the embedding's content made visible. The interpolation
starts at the decoder's reading of the sandal's embedding (a heeled shoe rather than that exact sandal) and ends at
its reading of the bag's; in between the decoded image stays a shoe for a while and then becomes a bag, with a few
in-between shapes, rather than fading one picture into the other as a blend of pixels would.
"""
