"""Chapter 11: image-to-image translation on Fashion-MNIST (edge maps <-> items).

- ``pix2pix``  the U-Net generator with skips, the conditional PatchGAN and its receptive field, Eq. 4's losses
- ``munit``    content and style encoders, the AdaIN decoder, MUNIT's reconstruction and adversarial losses

The data (edge maps by Canny, paired and unpaired sets) is in ``course_lib.data``.
"""
