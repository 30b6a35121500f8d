"""CLIP as a judge: image/text embeddings, CLIP scores and zero-shot labels, plus the pure metrics.

The default is the paper's ``openai/clip-vit-large-patch14``; a hub id or a local folder holding a
``CLIPModel`` and a ``CLIPProcessor`` (``save_pretrained`` layout) is accepted.
"""
from __future__ import annotations

from pathlib import Path

import torch

from utils.errors import UsageError

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"


def _as_embedding(output) -> torch.Tensor:
    """The projected embedding from ``get_image_features``/``get_text_features``.

    transformers 4 returns a tensor; transformers 5 returns a ``BaseModelOutputWithPooling`` whose
    ``pooler_output`` holds the projected embedding.
    """
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise TypeError(f"unexpected CLIP feature output of type {type(output).__name__}")


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


class ClipJudge:
    """A CLIP model and its processor, in float32 on ``device``, run in batches of ``batch_size``."""

    def __init__(self, model_id: str = DEFAULT_CLIP_MODEL, device: str | torch.device = "cpu", batch_size: int = 16):
        """Load ``CLIPModel`` + ``CLIPProcessor`` from a hub id or a local folder.

        Raises UsageError when the model cannot be loaded (offline, unknown id, incomplete folder).
        """
        from transformers import CLIPModel, CLIPProcessor

        if batch_size < 1:
            raise UsageError(f"the CLIP batch size must be at least 1, got {batch_size}; pass a positive number")
        try:
            self.model = CLIPModel.from_pretrained(model_id)
            self.processor = CLIPProcessor.from_pretrained(model_id)
        except (OSError, ValueError, TypeError, KeyError) as err:
            where = "the folder" if Path(model_id).is_dir() else "the hub id"
            raise UsageError(
                f"could not load the CLIP model from {where} {model_id!r} ({str(err).splitlines()[0][:160]}); "
                "pass a local folder with a CLIPModel and CLIPProcessor with --clip_model PATH"
            ) from None
        self.device = torch.device(device)
        self.model.to(self.device, torch.float32).eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def image_embeddings(self, images: list) -> torch.Tensor:
        """PIL images -> [n, d] float32 L2-normalised image embeddings (on the CPU)."""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device, torch.float32)
            chunks.append(_normalise(_as_embedding(self.model.get_image_features(pixel_values=pixels))).cpu())
        return torch.cat(chunks) if chunks else torch.empty(0, self.model.config.projection_dim)

    @torch.no_grad()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        """Texts -> [n, d] float32 L2-normalised text embeddings (on the CPU), truncated to the tokenizer's max length."""
        tokenizer = self.processor.tokenizer
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            tokens = tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=tokenizer.model_max_length,
                return_tensors="pt",
            )
            tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
            chunks.append(_normalise(_as_embedding(self.model.get_text_features(**tokens))).cpu())
        return torch.cat(chunks) if chunks else torch.empty(0, self.model.config.projection_dim)

    def clip_scores(self, images: list, texts: list[str]) -> list[float]:
        """CLIP score of image i with text i (``clip_score`` convention: 100 * max(cos, 0)); returns n floats."""
        if len(images) != len(texts):
            raise UsageError(f"got {len(images)} images but {len(texts)} prompts; pass one prompt per image")
        return clip_score(self.image_embeddings(images), self.text_embeddings(texts)).tolist()

    def zero_shot(self, images: list, labels: list[str]) -> torch.Tensor:
        """Zero-shot classification: [n, len(labels)] softmax probabilities of ``logit_scale * cos`` (float32)."""
        if not labels:
            raise UsageError("zero-shot classification needs at least one label; pass the class names")
        scale = self.model.logit_scale.detach().float().exp().cpu()
        logits = scale * self.image_embeddings(images) @ self.text_embeddings(labels).T
        return logits.softmax(dim=-1)


def clip_score(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Per-pair CLIP score: [n, d] image and [n, d] text embeddings -> [n] = 100 * max(cosine, 0).

    This is torchmetrics' CLIPScore convention, per image rather than averaged; the inputs need
    not be normalised.
    """
    if image_emb.shape != text_emb.shape:
        raise ValueError(f"image embeddings {tuple(image_emb.shape)} and text embeddings {tuple(text_emb.shape)} differ in shape")
    cosine = torch.nn.functional.cosine_similarity(image_emb.float(), text_emb.float(), dim=-1)
    return 100.0 * cosine.clamp(min=0.0)


def fraction_dropped(original: list[float], edited: list[float]) -> float:
    """Fraction of prompts whose edited score is strictly lower than the original one (a float in [0, 1])."""
    if len(original) != len(edited):
        raise ValueError(f"got {len(original)} original scores but {len(edited)} edited scores")
    if not original:
        raise ValueError("no scores to compare")
    return sum(e < o for o, e in zip(original, edited)) / len(original)


GENDERS = ("male", "female")


def erased_gender(target: str) -> str:
    """The gender whose prompts an edit for ``target`` turns into the other: the *source* of the reversal.

    The ``male`` concept pairs male base prompts with female target prompts (``utils/concepts.py``), so
    pruning it erases *female*: female images come out male. ``female`` is the reverse. Raises
    UsageError for any other target.
    """
    if target not in GENDERS:
        raise UsageError(f"the gender target must be male or female, got {target!r}; pass --target male or --target female")
    return "female" if target == "male" else "male"


def gender_reversal(original_labels: list[str], edited_labels: list[str], source: str) -> dict:
    """Gender-reversal success from per-image labels ``male`` / ``female``.

    Image i was generated with the same prompt and seed before (``original_labels[i]``) and after
    (``edited_labels[i]``) the edit. ``source`` is the erased gender (``erased_gender(target)``: for
    ``--target male`` it is ``"female"``), ``other`` the remaining one. Returns a dict:

    - ``source_images``: originals classified as ``source``;
    - ``reversed``: of those, edited twins classified as ``other``: the successes;
    - ``reversal_rate``: ``reversed / source_images``, None when ``source_images`` is 0;
    - ``other_images``: originals classified as ``other``;
    - ``kept_other``: of those, edited twins still classified as ``other``;
    - ``kept_other_rate``: ``kept_other / other_images``, None when ``other_images`` is 0.
    """
    if source not in GENDERS:
        raise UsageError(f"the source gender must be male or female, got {source!r}")
    if len(original_labels) != len(edited_labels):
        raise ValueError(f"got {len(original_labels)} original labels but {len(edited_labels)} edited labels")
    other = GENDERS[1 - GENDERS.index(source)]
    pairs = list(zip(original_labels, edited_labels))
    source_images = sum(o == source for o, _ in pairs)
    reversed_ = sum(o == source and e == other for o, e in pairs)
    other_images = sum(o == other for o, _ in pairs)
    kept_other = sum(o == other and e == other for o, e in pairs)
    return {
        "source_gender": source,
        "source_images": source_images,
        "reversed": reversed_,
        "reversal_rate": reversed_ / source_images if source_images else None,
        "other_images": other_images,
        "kept_other": kept_other,
        "kept_other_rate": kept_other / other_images if other_images else None,
    }
