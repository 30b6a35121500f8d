"""Where the scored Linear layers are: one table per block type, and the hook variants that pick from it.

The scored layers are found from the loaded model's modules, never from a model name: every module
whose class is a key of ``BLOCK_SITES`` contributes the sites listed for the variant's kind. One table
covers the UNet families (SD 1.x, SD 2.x, SDXL: ``BasicTransformerBlock``), PixArt (the same block),
SD 3.x (``JointTransformerBlock``: ``ff`` on the image stream, ``ff_context`` on the text stream, absent
in a context-pre-only block), Flux.1 (``FluxTransformerBlock`` likewise; ``FluxSingleTransformerBlock``,
whose MLP is ``proj_mlp`` then the MLP's input columns of ``proj_out``) and the text encoders (CLIP
``mlp.fc2``, T5 ``DenseReluDense.wo``).

No torch import at module level: the config checks read the names (``HOOK_VARIANTS``, ``variant_names``,
``STREAMS``) before torch is loaded; ``select_sites`` imports it when it walks a model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STREAMS = ("image", "text", "both")  # which denoiser streams are scored (--streams)


@dataclass(frozen=True)
class SiteRule:
    """One scored Linear of a block type.

    path: the Linear's attribute path inside the block (``ff.net.2``).
    stream: ``image`` or ``text`` (the tokens it sees in a two-stream block), or ``joint`` (a layer shared
        by both streams, scored whichever streams are chosen; its statistics cover all its tokens).
    columns: None = every input column is scored; ``mlp`` = only the MLP part of a Flux single block's
        ``proj_out`` input (the last ``block.mlp_hidden_dim`` columns; the first ones take the attention output).
    """

    path: str
    stream: str = "image"
    columns: str | None = None


def _rules(*rules: SiteRule) -> tuple[SiteRule, ...]:
    return rules


# block class name -> site kind -> the Linear layers of that kind in one such block
BLOCK_SITES: dict[str, dict[str, tuple[SiteRule, ...]]] = {
    # SD 1.x / 2.x / SDXL UNets and PixArt: one FFN per block, on the image tokens; attn2 is cross-attention
    "BasicTransformerBlock": {
        "ffn_out": _rules(SiteRule("ff.net.2")),
        "ffn_in": _rules(SiteRule("ff.net.0.proj")),
        "attn_key": _rules(SiteRule("attn2.to_k")),
        "attn_val": _rules(SiteRule("attn2.to_v")),
    },
    # SD 3.x: image-stream ff and text-stream ff_context (None in the last, context-pre-only block)
    "JointTransformerBlock": {
        "ffn_out": _rules(SiteRule("ff.net.2"), SiteRule("ff_context.net.2", "text")),
        "ffn_in": _rules(SiteRule("ff.net.0.proj"), SiteRule("ff_context.net.0.proj", "text")),
    },
    # Flux.1 double-stream blocks: as SD 3.x
    "FluxTransformerBlock": {
        "ffn_out": _rules(SiteRule("ff.net.2"), SiteRule("ff_context.net.2", "text")),
        "ffn_in": _rules(SiteRule("ff.net.0.proj"), SiteRule("ff_context.net.0.proj", "text")),
    },
    # Flux.1 single-stream blocks: proj_out = Linear(cat[attention output, MLP hidden]); the MLP's columns only
    "FluxSingleTransformerBlock": {
        "ffn_out": _rules(SiteRule("proj_out", "joint", columns="mlp")),
        "ffn_in": _rules(SiteRule("proj_mlp", "joint")),
    },
    # text encoders: CLIP (SD, SDXL, SD 3.x, Flux) and T5 (SD 3.x, PixArt, Flux; v1.0 and gated v1.1 FFNs)
    "CLIPEncoderLayer": {"ffn_out": _rules(SiteRule("mlp.fc2", "joint")), "ffn_in": _rules(SiteRule("mlp.fc1", "joint"))},
    "T5LayerFF": {"ffn_out": _rules(SiteRule("DenseReluDense.wo", "joint"))},
}


@dataclass(frozen=True)
class HookVariant:
    """A family of Linear layers whose weights are scored and pruned.

    component: the pipeline attribute holding them: ``denoiser`` (``unet`` or ``transformer``, whichever
        the pipeline has) or a text encoder (``text_encoder``, ``text_encoder_2``, ``text_encoder_3``).
    kind: the ``BLOCK_SITES`` kind it selects (``ffn_out``: the FFN's second Linear, the paper's choice).
    per_step: True when statistics are kept per denoiser call; False for modules that run once per
        generation (the text encoders), whose statistics all go to step 0.
    """

    name: str
    component: str
    kind: str
    per_step: bool = True


HOOK_VARIANTS: dict[str, HookVariant] = {
    v.name: v
    for v in (
        # the denoiser's second FFN Linear, UNet or transformer (the paper's default; named after SD's UNet)
        HookVariant("unet", "denoiser", "ffn_out"),
        HookVariant("unet-ffn-1", "denoiser", "ffn_in"),  # first FFN Linear (GEGLU / GELU projection)
        HookVariant("attn_key", "denoiser", "attn_key"),  # cross-attention keys (UNet and PixArt blocks)
        HookVariant("attn_val", "denoiser", "attn_val"),  # cross-attention values
        HookVariant("text", "text_encoder", "ffn_out", per_step=False),  # first text encoder's FFN (CLIP or T5)
        HookVariant("text-2", "text_encoder_2", "ffn_out", per_step=False),  # SDXL / SD 3.x second CLIP, Flux's T5
        HookVariant("text-3", "text_encoder_3", "ffn_out", per_step=False),  # SD 3.x T5
    )
}


def variant_names(component: str | None = None, ffn_only: bool = False) -> tuple[str, ...]:
    """The names of the variants, in table order: all of them, or those of one ``component`` and/or
    only those that select an FFN Linear."""
    return tuple(
        name for name, v in HOOK_VARIANTS.items()
        if (component is None or v.component == component) and (not ffn_only or v.kind.startswith("ffn"))
    )


def get_variant(name: str) -> HookVariant:
    """Return the variant called ``name``; raise KeyError listing the known ones otherwise."""
    try:
        return HOOK_VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown hook variant {name!r}; known: {', '.join(HOOK_VARIANTS)}") from None


def component_name(pipe: Any, variant: HookVariant) -> str:
    """The pipeline attribute that ``variant`` scores: ``unet`` or ``transformer`` for the denoiser, else the
    variant's text encoder. Raise ValueError when the pipeline has no such component."""
    names = ("unet", "transformer") if variant.component == "denoiser" else (variant.component,)
    for name in names:
        if getattr(pipe, name, None) is not None:
            return name
    raise ValueError(f"{type(pipe).__name__} has no {' or '.join(names)}, which hook variant {variant.name} scores")


def denoiser_of(pipe: Any):
    """The module whose calls define the step index: the pipeline's ``unet`` or ``transformer``."""
    return getattr(pipe, component_name(pipe, HOOK_VARIANTS["unet"]))


@dataclass(frozen=True)
class Site:
    """A selected Linear: the module, the input columns scored (None = all) and its stream."""

    module: Any
    columns: slice | None
    stream: str


def _columns(rule: SiteRule, block: Any, linear: Any) -> slice | None:
    if rule.columns is None:
        return None
    hidden = int(getattr(block, "mlp_hidden_dim", linear.in_features - linear.out_features))
    return slice(linear.in_features - hidden, linear.in_features)


def wants(stream: str, streams: str) -> bool:
    """Whether a site of ``stream`` is scored when ``streams`` (image | text | both) are chosen."""
    return stream == "joint" or streams == "both" or stream == streams


def select_sites(model: Any, variant: HookVariant, streams: str = "image") -> dict[str, Site]:
    """Map module name -> Site for every Linear of ``model`` that ``variant`` selects on ``streams``.

    Blocks are found by class (``BLOCK_SITES``); names are the Linear's full module names, in
    registration order (execution order is what ``trace`` records). Raise ValueError naming the model's
    class when nothing is selected (a model without a known FFN block, or a stream it does not have).
    """
    from torch import nn

    if streams not in STREAMS:
        raise ValueError(f"unknown streams {streams!r}; choose one of {', '.join(STREAMS)}")
    selected: dict[str, Site] = {}
    for block_name, block in model.named_modules():
        for rule in BLOCK_SITES.get(type(block).__name__, {}).get(variant.kind, ()):
            if not wants(rule.stream, streams):
                continue
            try:
                linear = block.get_submodule(rule.path)
            except AttributeError:  # e.g. ff_context of a context-pre-only block, attn2 of a block without cross-attention
                continue
            if isinstance(linear, nn.Linear):
                name = f"{block_name}.{rule.path}" if block_name else rule.path
                selected[name] = Site(linear, _columns(rule, block, linear), rule.stream)
    if not selected:
        known = ", ".join(block for block, kinds in BLOCK_SITES.items() if variant.kind in kinds)
        raise ValueError(
            f"{type(model).__name__} has no layer that hook variant {variant.name} scores on the {streams} stream(s) "
            f"(it looks for {variant.kind} layers of {known})"
        )
    return selected


def select_modules(model: Any, variant: HookVariant, streams: str = "image") -> dict[str, Any]:
    """Map module name -> Linear for every site ``select_sites`` finds (the modules to hook)."""
    return {name: site.module for name, site in select_sites(model, variant, streams).items()}


def site_columns(sites: dict[str, Site]) -> dict[str, slice]:
    """name -> the scored input columns, for the sites that score only some of them."""
    return {name: site.columns for name, site in sites.items() if site.columns is not None}


def scored_weights(sites: dict[str, Site]) -> dict[str, Any]:
    """name -> the scored part of each site's weight [out, scored in]: a view that shares the parameter's
    storage (writing it writes the model), detached from autograd."""
    weights = {}
    for name, site in sites.items():
        weight = site.module.weight.detach()
        weights[name] = weight if site.columns is None else weight[:, site.columns]
    return weights


def full_masks(sites: dict[str, Site], masks: dict[str, Any]) -> dict[str, Any]:
    """name -> a bool mask of the whole weight (False outside the scored columns) from masks of the scored part."""
    import torch

    full = {}
    for name, mask in masks.items():
        columns = sites[name].columns
        if columns is None:
            full[name] = mask.bool()
            continue
        whole = torch.zeros(sites[name].module.weight.shape, dtype=torch.bool, device=mask.device)
        whole[:, columns] = mask
        full[name] = whole
    return full
