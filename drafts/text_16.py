# Prose of notebook 16 that discusses measured numbers (cpu profile); checked against the run's outputs.

palette = """
k-means spreads the 16 greys almost evenly from 0.00 to 0.92, about 0.06 apart. Nothing sits at pure white: after
the 2×2 averaging, few pixels are brighter than 0.92, and a centre there would serve almost none. The price of the
vocabulary is small: a quantized test pixel is 0.0089 away from its 14×14 original on average (about 2 of 255 grey
levels). What is lost is mostly resolution, the 28 → 14 step, as the middle row of the grid shows; the 16 greys of
the bottom row are hard to tell from it.
"""

nll = """
The shipped model spends 1.228 bits per token, 241 bits per image. Every counting model is far behind: the left
neighbour (bigram) needs 2.262 bits, the per-position frequencies 2.705, the global frequencies 3.057, and the
uniform guess 4. The transformer's context is the whole image so far, and it uses it: it cuts the best counting
model's code length by 46 %. (The VAE's 0.431 bits per dimension is printed for completeness: it codes 784 binary
pixels, a different data set, so the two numbers cannot be ranked.)
"""

completions = """
The completions are garments, and mostly the right ones: trousers continue as two legs, a patterned pullover keeps
its pattern and gets sleeves, a sneaker's top gets a sole. The three draws from one prefix differ in detail (a
lighter or darker body, a different hem), as samples from a distribution should. The judge agrees: it recognises the
original's class in 73.3 % of the 300 completed images, against 22.3 % for the top halves alone (bottom black) and
85.7 % for the quantized originals, its ceiling at this resolution. The model fills in most of what the missing
half tells the judge, not all of it.
"""

samples = """
Drawn from nothing, the samples are recognisable garments of several classes (trousers, tops, sneakers, boots,
sandals, a bag), some with the broken texture of a pixel-by-pixel sampler that drew one unlucky token and carried
on. iGPT's FID, 10.18, is behind chapter 07's VAE (8.47), DCGAN (7.26) and StyleGAN (9.64) under the same protocol
(1,000 samples against the same 1,000 test images), and its class histogram is less even (KL 0.062 against
0.027-0.037). But the comparison is not on equal terms: real images pushed through iGPT's 14×14, 16-grey pipeline
already score 5.34, where real 28×28 images score 0.28. The judge's features are sensitive to the blocky
upsampling, and half of iGPT's distance is the price of its vocabulary rather than of its model. Sampling is the
other cost of pixel-by-pixel generation: 196 network calls per image, 415 s for 1,000 images here, where a GAN
needs one call.
"""

bert = """
On the same 60,580 hidden pixels, BERT needs 1.157 bits per token and the AR model 1.234: seeing both sides of a
pixel helps, but by only 6 %: many hidden pixels sit in background or in uniform regions that the context before
them already predicts. Both are far below the left neighbour (2.271). At this size BERT's argmax fills are hard to
tell from the originals.
"""

probes = """
Two findings, one of them against the chapter's expectation. First, the middle-layer peak: the AR model's probe
rises from 0.411 at the embeddings to 0.705, 0.751 and 0.768 at layer 3, then drops to 0.755 at the last layer, the
shape the iGPT paper reports, though the drop here (1.3 points) is small next to the sampling error of a
2,000-image test set (a standard error of about 0.9 points for one accuracy): with 4 layers it is a hint rather than
a finding. BERT's probe rises all the way to the last layer (0.753). Second, and plainly: **no layer beats the raw pixels.** A linear
classifier on the 196 quantized pixels reaches 0.794, above every layer of either model. The paper's features beat
pixels with models of 76 million to 6.8 billion parameters trained on ImageNet; a 4-layer model of 64 dimensions,
trained for 20 minutes, has learned to predict pixels well (1.228 bits per token) without putting the
garment's class on a linear axis better than the pixels themselves do. Averaging over positions also discards the
layout that the raw-pixel probe keeps. The iGPT recipe needs scale to pay off as a feature learner; here it pays off
as a density model.
"""
