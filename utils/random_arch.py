"""Full-size Stable Diffusion 1.5 architectures with random weights (no download), for speed and size benchmarks.

The layer shapes are SD 1.5's published ones (UNet 860 M parameters, 16 FFNs; CLIP ViT-L/14 text
encoder; the SD VAE), so they cost exactly what the real models cost; the weights are random, so
the images mean nothing. The tokenizer is our small offline one (token ids stay in range).
"""
from __future__ import annotations


import torch

SD15_UNET = dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
VIT_L14_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu")
SD_VAE = dict(
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=4,
    sample_size=512,
)


def sd15_unet():
    """SD 1.5's UNet2DConditionModel with random weights (its published config)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**SD15_UNET)


@torch.no_grad()
def build_random_sd15(device: torch.device, dtype: torch.dtype, seed: int = 0):
    """A StableDiffusionPipeline of SD 1.5's shapes with random weights, built on ``device`` in ``dtype``.

    Built directly on the device (fast on a GPU); the PNDM scheduler is SD 1.5's.
    """
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    from utils.tiny_pipeline import word_tokenizer

    tokenizer = word_tokenizer()
    torch.manual_seed(seed)
    with torch.device(device):
        unet = sd15_unet()
        vae = AutoencoderKL(**SD_VAE)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(**VIT_L14_TEXT, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        )
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe
