"""The table of hook variants: which pipeline component and which Linear layers each one scores.

No torch import at module level: the config checks read the names (``HOOK_VARIANTS``, ``variant_names``)
before torch is loaded; ``select_modules`` imports it when it walks a model.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HookVariant:
    """A family of Linear layers whose weights are scored and pruned.

    component: the pipeline attribute holding them (``unet`` or ``text_encoder``).
    suffix: the module-name ending that selects them (e.g. ``.ff.net.2``).
    per_step: True when statistics are kept per UNet call; False for modules that run once per
        generation (the text encoder), whose statistics all go to step 0.
    """

    name: str
    component: str
    suffix: str
    per_step: bool = True


HOOK_VARIANTS: dict[str, HookVariant] = {
    v.name: v
    for v in (
        HookVariant("unet", "unet", ".ff.net.2"),  # second FFN Linear (the paper's default)
        HookVariant("unet-ffn-1", "unet", ".ff.net.0.proj"),  # first FFN Linear (GEGLU projection)
        HookVariant("attn_key", "unet", ".attn2.to_k"),  # cross-attention keys
        HookVariant("attn_val", "unet", ".attn2.to_v"),  # cross-attention values
        HookVariant("text", "text_encoder", ".mlp.fc2", per_step=False),  # CLIP text-encoder MLP
    )
}


def variant_names(component: str | None = None, ffn_only: bool = False) -> tuple[str, ...]:
    """The names of the variants, in table order: all of them, or those of one ``component`` and/or
    only those that select an FFN Linear (``.ff.`` in the suffix)."""
    return tuple(
        name for name, v in HOOK_VARIANTS.items()
        if (component is None or v.component == component) and (not ffn_only or ".ff." in v.suffix)
    )


def get_variant(name: str) -> HookVariant:
    """Return the variant called ``name``; raise KeyError listing the known ones otherwise."""
    try:
        return HOOK_VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown hook variant {name!r}; known: {', '.join(HOOK_VARIANTS)}") from None


def select_modules(model: "nn.Module", variant: HookVariant) -> dict[str, "nn.Linear"]:
    """Map module name -> Linear for every module of ``model`` that ``variant`` selects.

    The order is registration order; execution order is what ``trace`` records.
    """
    from torch import nn

    selected = {
        name: module
        for name, module in model.named_modules()
        if name.endswith(variant.suffix) and isinstance(module, nn.Linear)
    }
    if not selected:
        raise ValueError(f"no module of {type(model).__name__} ends with {variant.suffix!r} (hook variant {variant.name})")
    return selected
