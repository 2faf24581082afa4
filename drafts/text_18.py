# Prose of notebook 18 that discusses measured numbers (cpu profile); checked against the run's outputs.

masks = """
Algorithm 1 hides 19 or 20 of the 49 patches (19.97 on average, 40.8 %) in rectangles, and it shows: given that a
patch is masked, its right neighbour is masked 75 % of the time, against 40 % for 20 patches scattered at random.
The heat map shows a side effect of drawing whole blocks inside the grid: the central patches are hidden far more
often than the corners (about 0.55 against 0.2 on its colour bar). On Fashion-MNIST that is where the garment is, so the model is asked most often
about the patches that matter.
"""

mim = """
BEiT predicts 16.4 % of the hidden tokens exactly, against 1.3 % for the most frequent token, 2.8 % for the image's
own most frequent visible token and 5.7 % for a copy of the nearest visible patch: three times the best guesser. In
bits, its prior needs 4.47 per masked token where the uniform one needs 7. Exact-token accuracy is a harsh measure
for this tokenizer, though. Look at image 0's tokens above: the black background, the same everywhere, gets a
different token at almost every position (78, 115, 57, 122, ...), because the tokenizer's 128 codes crowd a latent
that varies in about two directions (chapter 15 measured it), so many codes decode to nearly the same patch. The
decoded grids show it: BEiT's predicted tokens decode to images that are hard to tell from the decoded true tokens,
although five of six predicted tokens are "wrong".
"""

finetune = """
Pre-training helps, by less than it did for the paper: fine-tuned on the same 6,000 labelled images with the same
recipe, the BEiT-initialised ViT reaches 87.7 % against 85.9 % from random weights (+1.8 points), and still trails
the ResNet (89.9 %) by 2.2 points: pre-training on unlabelled images bought back less than half of the ViT's
missing inductive bias (4.0 points at this data size, chapter 17). The linear probe says where the gain comes from:
frozen features of the pre-trained ViT give 78.9 %, against 68.4 % for a ViT with random weights (random features
of an image are already far above chance). Masked image modelling put class information into the class token
without ever seeing a label, though not as much as supervised training does. The paper's larger gains came with
ImageNet-1k pre-training for 800 epochs and a DALL·E tokenizer of 8,192 codes; ours pre-trained 5,000 steps
(about 11 epochs) on 60,000 small images, with a tokenizer whose codes are partly interchangeable (above), which
makes the target noisier than it needs to be.
"""

vae = """
Stage 1, the tokenizer, reconstructs test images with an MSE of 0.0062 per pixel. Stage 2, BEiT's prior, codes the
20 masked tokens of an image in 89 bits where stage 1's uniform prior needs 140: the part of the bound that BEiT
trains is a saving of 51 bits per image. Read as a VAE, BEiT is half of one: its encoder and decoder were trained
first and frozen, and only the prior learns, conditioned on the visible patches.
"""
