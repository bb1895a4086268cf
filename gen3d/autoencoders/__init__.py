"""Latent autoencoders for latent diffusion: KL- or VQ-regularised, with a patch discriminator (``autoencoder``)
and the LDM-recipe trainer (``train``)."""
