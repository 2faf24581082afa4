# Prose of notebook 16 that discusses measured numbers (cpu profile); checked against the run's outputs.

palette = """
k-means spreads the 16 greys almost evenly from 0.00 to 0.92, about 0.06 apart. Nothing sits at pure white: after
the 2×2 averaging, few pixels are brighter than 0.92, and a centre there would serve almost none. The price of the
vocabulary is small: a quantized test pixel is 0.0089 away from its 14×14 original on average (about 2 of 255 grey
levels). What is lost is mostly resolution, the 28 → 14 step, as the middle row of the grid shows; the 16 greys of
the bottom row are hard to tell from it.
"""

nll = """
The shipped model spends 1.228 bits (0.851 nats) per token, 241 bits (167 nats) per image. Every counting model is far behind: the left
neighbour (bigram) needs 2.262 bits, the per-position frequencies 2.705, the global frequencies 3.057, and the
uniform guess 4. The transformer's context is the whole image so far, and it uses it: it cuts the best counting
model's code length by 46 %. (The VAE's 0.431 bits per dimension is printed for completeness: it codes 784 binary
pixels, a different data set, so the two numbers cannot be ranked.)
"""

completions = """
The completions are garments, and mostly the right ones. The first row is an ankle boot whose top half shows only
the top of its shaft: all three completions grow a foot that reaches forward to the toe, and a sole, as the original
has (one draw has a black hole in the foot: a dark token drawn, and the model carried on). The patterned pullover
keeps its pattern and gets the rest of its body down to the hem; the three trousers continue as two legs (one draw
stops short, one gets a dark patch); the shirt gets its lower half. The three draws from one prefix differ in detail
(a lighter or darker body, a different hem), as samples from a distribution should. The judge agrees: it recognises
the original's class in 73.3 % of the 300 completed images, against 22.3 % for the top halves alone (bottom black)
and 85.7 % for the quantized originals, its ceiling at this resolution. The model fills in most of what the missing
half tells the judge, not all of it. The cached sampler drew the same tokens as the loop (0 of 1,176 differ) and
completed the 300 images in 1 s.
"""

samples = """
Drawn from nothing, the samples are recognisable garments of several classes (trousers, tops, a dress, sneakers,
boots, sandals, a bag), some with the broken texture of a pixel-by-pixel sampler that drew one unlucky token and
carried on (the last image of the top row). Over three seeds of 1,000 images, iGPT's FID is 9.84 ± 0.48 (mean ± sd
over the seeds): behind DCGAN (7.12 ± 0.29) and chapter 07's VAE (8.40 ± 0.32), level with StyleGAN (9.93 ± 0.27).
The last two differ by far less than either's spread, and one seed can rank them either way: seed 1 alone gives
iGPT 10.18 and StyleGAN 9.64. Seed 1 with the cache also reproduces the FID in `igpt_ar`'s manifest (10.18), drawn
without it. The class histogram is where iGPT is plainly behind: its KL to uniform is 0.064 ± 0.007, against 0.027
to 0.047 for the other generators and 0.004 for real images; the bars show it drawing far more pullovers than any
other model, and too few shirts, trousers and coats (the VAE's gap is its sandals).

The comparison is not on equal terms, though. Real images pushed through iGPT's 14×14, 16-grey pipeline already
score 5.23 ± 0.17, where real 28×28 images score 0.31 ± 0.03: the judge's features are sensitive to the blocky
upsampling, and the pipeline's floor alone is 5.23 of iGPT's 9.84 (FID does not add up, so the rest is not the
model's share, but no model of these tokens can score below the floor). The pipeline costs class evenness too:
real images through it have a class KL of 0.029 ± 0.001, against 0.004 as they are.

Sampling is the other cost of pixel-by-pixel generation: 196 network calls per image, where a GAN needs one. Without
a cache each call runs the network on the whole sequence so far: `igpt_ar`'s manifest records 415 s for its 1,000
samples, timed when the checkpoint was built (batches of 500), and in this run the 16 images above took 1.78 s that
way and 0.21 s with the key/value cache. With the cache iGPT draws 1,000 images in 4.64 s here, against 0.89 s for
StyleGAN and 0.05 s for DCGAN.
"""

bert = """
On the same 60,580 hidden pixels, BERT needs 1.157 bits per token and the AR model 1.234: seeing both sides of a
pixel helps, but by only 6 %: many hidden pixels sit in background or in uniform regions that the context before
them already predicts. Both are far below the left neighbour (2.271). At this size BERT's argmax fills are hard to
tell from the originals.
"""

probes = """
Two findings, one of them against the chapter's expectation. First, the middle-layer peak: the AR model's probe
rises from 0.431 at the embeddings to 0.719, 0.763 and 0.786 at layer 3, then drops to 0.778 at the last layer, the
shape the iGPT paper reports. The drop is small, 0.84 points, but on all 10,000 test images and paired image by
image it is not the test set's noise: the 95 % bootstrap interval of the lead is [+0.22, +1.47] points. The interval
covers only the test images: the probes' 5,000 training images were drawn once, and the two layers were picked
after looking at the results, so read it as "a small but real lead on this test set", not as the paper's margin.
BERT's probe rises all the way to the last layer (0.766). Second, and plainly: **no layer beats the raw pixels.** A
linear classifier on the 196 quantized pixels reaches 0.807, above every layer of either model. The paper's features
beat pixels with models of 76 million to 6.8 billion parameters trained on ImageNet; a 4-layer model of 64
dimensions, trained for 20 minutes, has learned to predict pixels well (1.228 bits per token) without putting the
garment's class on a linear axis better than the pixels themselves do. Averaging over positions also discards the
layout that the raw-pixel probe keeps. The iGPT recipe needs scale to pay off as a feature learner; here it pays off
as a density model.
"""
