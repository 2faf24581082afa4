# Prose of notebook 18 that discusses measured numbers (cpu profile); checked against the run's outputs.

tokens = """
In this ankle boot, 21 of the 49 cells are all black, and they carry 17 different tokens: the same black is coded
differently in the top rows and along the bottom row, because each token was computed from the pixels around its
cell (chapter 08 found 60 codes on all-black cells over 5,000 test images). The decoded tokens keep the boot's
outline and smooth its texture.
"""

masks = """
Algorithm 1 hides 19 or 20 of the 49 patches (19.97 on average, 40.8 %) in rectangles, and it shows: given that a
patch is masked, its right neighbour is masked 75 % of the time, against 40 % for 20 patches scattered at random.
The heat map shows a side effect of drawing whole blocks inside the grid: the centre patch is hidden in 72 % of the
masks, the four corners in 12 to 14 % (printed above), because more of the blocks that fit in the grid cover the
centre. On Fashion-MNIST that is where the garment is, so the model is asked most often about the patches that
matter.
"""

mim = """
BEiT predicts 16.4 % of the hidden tokens exactly, against 1.3 % for the most frequent token, 2.8 % for the image's
own most frequent visible token and 5.7 % for a copy of the nearest visible patch: about three times the best
guesser. In bits, its prior needs 4.47 per masked token where the uniform one needs 7. Exact-token accuracy is a
harsh measure for this tokenizer, though. A token is a code for its cell in context (section 1: the same black
background gets a different token almost everywhere), so a prediction can miss the exact code and still decode to
nearly the same pixels. The context also changes the task: the tokenizer computed each masked position's target
from a 26×26-pixel window, visible pixels included, so a target is not a function of the hidden patch alone; part
of it describes what the model can see.
"""

decoded = """
Decoded, BEiT's predictions come much closer to the decoded true tokens than the guessers' do: on the masked cells'
pixels, a mean squared difference of 0.0259, against 0.1045 with each masked token copied from the nearest visible
patch and 0.2442 with the most frequent token. They are not the same images, though, and the difference row shows
what is lost: the boot of column 1 loses its shaft and becomes a low shoe, the pullover of column 2 loses its dark
band of lettering, and the trousers differ along their legs. With 2 to 5 of the 20 masked tokens of these images
exactly right, BEiT predicts the coarse shape of a hidden region and misses its details.
"""

finetune = """
Pre-training helps, by less than it did for the paper: fine-tuned on the same 6,000 labelled images with the same
recipe, the BEiT-initialised ViT reaches 87.7 % against 85.9 % from random weights (+1.8 points), and still trails
the ResNet (89.9 %) by 2.2 points: pre-training on unlabelled images bought back less than half of the ViT's
missing inductive bias (4.0 points at this data size, chapter 17). It also cost more: 18 minutes of pre-training
(section 3) on top of its 14 minutes of fine-tuning, against 14 minutes for the ViT from scratch and 19 for the
ResNet.

How sure is the +1.8? On the 10,000 test images the pre-trained ViT is right where the one from scratch is wrong on
544 images, and the reverse happens on 364: McNemar's exact test gives p = 2.5e-09, and the paired bootstrap puts
the gain between +1.2 and +2.4 points (95 %). The ResNet's lead is as clear (605 against 383 images, p = 1.7e-12,
+1.6 to +2.8 points). So neither difference comes from which test images were drawn, and "by 1 to 3 points" holds
for these checkpoints. What the tests cannot see is the randomness of training: each model was trained once, with
one seed, and the seed-to-seed spread of these 150-epoch runs is not measured here; whether another seed would keep
the gain between 1 and 3 points is open.

The linear probes temper the story. A logistic regression on the raw 784 pixels reaches 79.3 %; the frozen
pre-trained ViT gives 78.9 % from its class token and 78.9 % from the mean of its patch tokens (the pooling the
paper's classifier reads), against 68.4 % and 70.0 % for a ViT with random weights. Masked image modelling made the
network's features about as linearly separable as the pixels themselves, not more (notebook 16 found raw pixels
ahead of every Image GPT layer too). So the probe does not say where the fine-tuning gain comes from: it appears
only when the whole network is trained on the labels from the pre-trained weights. The paper's larger gains came
with ImageNet-1k pre-training for 800 epochs and a DALL·E tokenizer of 8,192 codes; ours pre-trained 5,000 steps
(about 11 epochs) on 60,000 small images.
"""

vae = """
Stage 1, the tokenizer, reconstructs test images with an MSE of 0.0062 per pixel; read as a Gaussian decoder with
σ² = MSE (σ = 0.079), that is a reconstruction term of +882 nats per image. Stage 2, BEiT's prior, codes the 20
masked tokens of an image in 89 bits (62 nats) where stage 1's uniform prior needs 140 bits (97 nats): the bound
rises from +785 to +820 nats, and those 35 nats (51 bits) per image are all that BEiT's training changes. The
+882 is a log-density whose value depends on the σ we chose, so only the difference between the two priors is a
code length that means something on its own. Read as a VAE, BEiT is half of one: its encoder and decoder were
trained first and frozen, and only the prior learns, conditioned on the visible patches.
"""
