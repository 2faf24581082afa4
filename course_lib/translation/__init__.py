"""Chapter 11: image-to-image translation on Fashion-MNIST (edge maps <-> items).

- ``pix2pix``  the U-Net generator with skips, the conditional PatchGAN and its receptive field, Eq. 4's losses
- ``munit``    content and style encoders, the AdaIN decoder, MUNIT's reconstruction and adversarial losses
- ``train``    one pix2pix step, one L1-only step, one MUNIT step, batched translation; the resumable run
- ``shipped``  the shipped U-Nets (L1 only; pix2pix at lambda = 1, 10, 100) and MUNIT, ``load_translator``
- ``config``   notebook 11's sizes per profile; ``checks`` its exercises

The data (edge maps by Canny, paired and unpaired sets) is in ``course_lib.data``.
"""
