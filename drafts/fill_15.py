# Prose of notebook 15 that discusses measured numbers (cpu profile); checked against the run's outputs.

PREDICTION = "2x to 8x"

RECON_DISCUSSION = """
The tokenizer never saw a captioned image in training (they are rescaled, shifted and brightened Fashion-MNIST
items), and still reconstructs them closely: MSE 0.0036 and FID 1.22, against a floor of 0.42 between two sets of
captioned test images. The simplest latent on the same 7 × 7 grid, the 4 × 4 block means, is five times worse in
MSE (0.0174) and useless by FID (41.53): a 7 × 7 summary of an image needs a learned decoder to become an image
again. The counts say what "compression" means here: 16 times fewer positions, 18 times fewer bits once
quantized, but as many numbers (784) before quantization. The next section asks how many of them carry anything.
"""

PCA_DISCUSSION = """
Almost nothing lives beyond two directions: the first axis holds 96.7 % of the variance, two hold 99.84 %, three
99.96 %, and the remaining thirteen share the last 0.04 %. Keeping only the top 2 axes of every position costs
nothing the judge or FID can see (0.802 and 1.23, against 0.803 and 1.22 with all 16); keeping 1 costs a lot (0.698
and 2.85). Nothing in the tokenizer's loss asks it to spread information over its channels, and it did not: its
latent is, in effect, 2 numbers per position, 98 per image, 8 times fewer than the pixels. That matters for
diffusion. Noise added along the 14 flat directions is predicted exactly by a linear function of $z_t$, so a
denoiser trained on all 16 channels spends most of its loss where there is nothing to learn. `ldm_text` therefore
diffuses the top 2 axes, each scaled to unit variance (`LatentPCA`; the map is stored with the weights), and
decodes by mapping back to the 16 channels, snapping to the codebook and running $D$.
"""

SAMPLES_DISCUSSION = """
Seven of the eight captions are followed in every respect, in all six samples: the small dark sneaker sits on
the left, the small light bag at the top, the small ankle boot at the bottom, and the large items fill the frame in
the asked brightness. The samples of one caption differ little from each other: guidance at scale 3 trades variety
for fidelity (the sweep below measures both). The exception is the large light sandal, drawn as broken blobs of
straps: a sandal's thin, irregular structure is the hardest shape here for a 7 × 7 latent and its denoiser.
"""

EVAL_DISCUSSION = """
Reading nothing (scale 0) gets chance on every attribute: class 0.110, size 0.460, brightness 0.493, position 0.250.
The conditional model (scale 1) already follows size, brightness and position almost perfectly (1.000, 1.000,
0.994), global properties that the pooled caption and a few cross-attention reads settle, but the class only 60 %
of the time. Guidance is what the class needs: 0.877 at scale 3 and 0.883 at scale 5, against 0.890 for real
captioned images, the judge's own ceiling. **The chapter's cpu target (class accuracy ≥ 80 %) is met**, here on 300
captions and in the shipped checkpoint's manifest on 1,000 (0.856 at scale 3). FID improves from 6.20 unguided to
2.43 at scale 3, near the floor of 2.32 between two sets of real captioned images, then worsens at scale 5 (2.70)
while the class accuracy no longer moves: past scale 3, guidance buys no fidelity and costs variety, chapter 14's
trade-off again. The gpu-profile target (90 %) needs a GPU run, not measured here.
"""

SPEED_DISCUSSION = """
Latent sampling takes 58.6 ms per image against 180.1 ms in pixel space, 3.1 times faster, decoder included; the
FLOPs per network call fall 5.0 times (32 against 160 MFLOPs), not 16 times as the positions do. The latent model
keeps 64 channels at all 49 positions and attends over them in every block, where the pixel U-Net spends only 16
channels on its 784 full-resolution positions and narrows its work as it goes down. The positions shrink; the
work per position grows. At Stable Diffusion's scale (512 × 512 images, a 64 × 64 latent) the same trade is far
more favourable, because attention over 262,144 pixel positions would be out of reach altogether.
"""

MAPS_DISCUSSION = """
In the pants' maps, the function words ("an", "image", "of") get about 0.08-0.09 of the weight each, the content
words more ("large" 0.19, "pants" 0.18), and the start token the most (0.27): like a [CLS] token, it is where a
position's attention goes when no word is needed. Over the 100 small items, the content words draw attention from
the item's own cells more than evenly: the brightness word 1.73 times its share of the cells, the side 1.32, the
garment 1.27, while the start token's attention sits mostly off the item (0.68). The item's positions read what
they should look like; the background reads the word that says nothing.
"""
