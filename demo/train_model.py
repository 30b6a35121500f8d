"""Train a small Stable-Diffusion-architecture model on the demo world (seeded; CPU or GPU; step-capped or time-boxed).

Stages: (1) an AutoencoderKL with x2 downsampling (32x32x3 <-> 16x16x4), trained first; (2) the
latents of a fixed rendered dataset, precomputed; (3) a UNet2DConditionModel and a CLIPTextModel
trained jointly with the DDPM epsilon objective (10% empty captions for guidance, EMA of the UNet).
The result is a StableDiffusionPipeline folder (DDIM scheduler, word-level CLIPTokenizer built from
our vocab/merges) that ``StableDiffusionPipeline.from_pretrained(folder)`` loads offline.

Candidates (--arch) differ in the UNet only; see ARCHS. Training stops at --steps (when given) or
after --minutes, whichever comes first; the random draws (batches, noise, timesteps) come from a
seeded CPU generator, so a step-capped run draws the same batches on any device. Example:
python demo/train_model.py --arch sd1 --minutes 45 --out models/demo-sd1
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from demo.world import ATTRIBUTES, dataset, render  # noqa: E402
from neuron_receivers.hook_variants import get_variant, select_modules  # noqa: E402
from demo.checks import device_name, first_line, integer, number, output_folder, read_json  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402
from utils.model_loading import resolve_device  # noqa: E402
from utils.storage import write_text  # noqa: E402

ARCHS = {
    # SD 1.x layout: 3 cross-attention down blocks, 2 layers each, 16 FFNs
    "sd1": dict(block_out_channels=(32, 32, 64, 64), down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, layers_per_block=2, transformer_layers_per_block=1),
    # fewer, wider levels with 2 transformer layers per block (more FFNs where the concepts meet the text)
    "wide2": dict(block_out_channels=(64, 96), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1, transformer_layers_per_block=2),
    # no attention at full latent resolution: 2 transformer layers per block at 8x8 and 4x4 (14 FFNs, 64 wide)
    "low2": dict(block_out_channels=(32, 64, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), layers_per_block=1, transformer_layers_per_block=2),
}
# low2 with more of the UNet in its FFNs: 3 or 4 transformer layers per block (21 / 28 FFNs), or wider
# cross-attention levels (96 channels: FFNs 384 wide)
ARCHS["low3"] = dict(ARCHS["low2"], transformer_layers_per_block=3)
ARCHS["low4"] = dict(ARCHS["low2"], transformer_layers_per_block=4)
ARCHS["wide96"] = dict(ARCHS["low2"], block_out_channels=(32, 96, 96))
# more capacity at the full 16x16 latent resolution, where the fine textures (waves, zigzag, checker) are drawn:
# cross-attention there too (one transformer layer at 16x16, two below; 17 FFNs), 64 channels there
# instead of 32, or both
ARCHS["att16"] = dict(ARCHS["low2"], down_block_types=("CrossAttnDownBlock2D",) * 3, up_block_types=("CrossAttnUpBlock2D",) * 3,
                      transformer_layers_per_block=(1, 2, 2))
ARCHS["wide16"] = dict(ARCHS["low2"], block_out_channels=(64, 64, 64))
ARCHS["att16w"] = dict(ARCHS["att16"], block_out_channels=(64, 64, 64))
TEXT_DIM = 64
MAX_TOKENS = 16


def caption_words() -> list[str]:
    """Every word a caption can hold."""
    words = {"a", "on", "background", "in", "the", "style", "of"}
    for values in ATTRIBUTES.values():
        for value in values:
            words.update(value.split())
    return sorted(words)


def _word_merges(word: str) -> list[str]:
    """The left-to-right merges that spell ``word`` (with its ``</w>``) as one token."""
    pieces = list(word[:-1]) + [word[-1] + "</w>"]
    merges, current = [], pieces[0]
    for piece in pieces[1:]:
        merges.append(f"{current} {piece}")
        current += piece
    return merges


def write_word_tokenizer(folder: Path) -> int:
    """vocab.json / merges.txt of a byte-level BPE whose merges spell every caption word as one token.

    BPE applies the lowest-ranked merge first, so one word's merges can split another (``r i`` of
    "ring" inside "stripes"); the merges of any word that does not come out whole are moved to the
    front until every word does.
    """
    from transformers import CLIPTokenizer

    from utils.tiny_pipeline import _byte_characters

    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_characters()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    words = caption_words()
    for word in words:
        for merge in _word_merges(word):
            vocab.setdefault(merge.replace(" ", ""), len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab.setdefault(special, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    merges = list(dict.fromkeys(m for word in words for m in _word_merges(word)))
    for _ in range(100):
        (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        tokenizer = CLIPTokenizer.from_pretrained(str(folder))
        split = [w for w in words if len(tokenizer(w, add_special_tokens=False).input_ids) != 1]
        if not split:
            return len(vocab)
        first = list(dict.fromkeys(m for w in split for m in _word_merges(w)))
        merges = first + [m for m in merges if m not in first]
    raise RuntimeError(f"could not order the merges so that {split} are single tokens")


def build_models(arch: str, vocab_size: int, tokenizer, latent_channels: int = 8):
    """(vae, unet, text_encoder) with fresh weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    vae = AutoencoderKL(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        latent_channels=latent_channels, sample_size=32, layers_per_block=1, norm_num_groups=32, mid_block_add_attention=False)
    unet = UNet2DConditionModel(sample_size=16, in_channels=latent_channels, out_channels=latent_channels, cross_attention_dim=TEXT_DIM, attention_head_dim=8,
                                norm_num_groups=32, **ARCHS[arch])
    text = CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, hidden_size=TEXT_DIM, intermediate_size=4 * TEXT_DIM, num_hidden_layers=2,
                                        num_attention_heads=4, max_position_embeddings=MAX_TOKENS, bos_token_id=tokenizer.bos_token_id,
                                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    return vae, unet, text


def images_tensor(items) -> torch.Tensor:
    """Rendered images of (scene, seed) items as [n, 3, 32, 32] in [-1, 1]."""
    array = np.stack([render(scene, seed) for scene, seed in items])
    return torch.from_numpy(array).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def train_vae(vae, images: torch.Tensor, steps: int, log) -> float:
    """Reconstruction + small KL training of the VAE; returns the last loss."""
    optimizer = torch.optim.AdamW(vae.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=max(steps, 1), pct_start=0.1)
    generator = torch.Generator().manual_seed(1)
    vae.train()
    for step in range(steps):
        batch = images[torch.randint(len(images), (32,), generator=generator)]
        posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.sample(generator=generator)).sample
        loss = nn.functional.mse_loss(recon, batch) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 50 == 0:
            log(f"vae step {step}: loss {loss.item():.5f}")
    return loss.item()


def hoyer(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Hoyer measure ||x||_1 / (||x||_2 sqrt(n)) along ``dim`` (n entries): 1 when all are equal in size,
    1/sqrt(n) when one is non-zero."""
    return x.abs().sum(dim) / (x.norm(dim=dim) * x.shape[dim] ** 0.5 + 1e-6)


class FFNSparsity:
    """Two sparsity measures of the FFN hidden activations (the inputs of every ``ff.net.2``, which
    ConceptPrune scores), both scale-invariant Hoyer measures (1 = dense), recorded in the forward pass:

    - population: per token, across the neurons (few neurons fire at a place);
    - selectivity: per neuron, its mean |activation| over an image's tokens, across the images of a
      group (a neuron fires for few images). ``groups`` consecutive slices of the batch are measured
      apart, so that a training batch whose groups share a timestep asks neurons to be selective for
      content, not for the noise level.

    Use as a context manager around training; ``take()`` returns (population, selectivity) means of the
    forward passes since its last call, as differentiable scalars, and clears them. Hooks are removed on exit.
    """

    def __init__(self, unet: nn.Module, groups: int = 1, population: bool = True, selectivity: bool = True):
        self.modules = list(select_modules(unet, get_variant("unet")).values())
        self.groups = groups
        self.measure_population, self.measure_selectivity = population, selectivity  # a measure not asked for costs nothing
        self.population: list[torch.Tensor] = []
        self.selectivity: list[torch.Tensor] = []
        self.handles: list = []

    def _record(self, module, inputs) -> None:
        x = inputs[0]  # [batch, tokens, neurons]
        if self.measure_population:
            self.population.append(hoyer(x, -1).mean())
        if self.measure_selectivity:
            per_image = x.abs().mean(1)  # [batch, neurons]
            self.selectivity.append(hoyer(per_image.reshape(self.groups, -1, per_image.shape[-1]), 1).mean())

    def __enter__(self) -> "FFNSparsity":
        self.handles = [m.register_forward_pre_hook(self._record) for m in self.modules]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def take(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(population, selectivity): mean Hoyer measures over the recorded FFNs (zero for a measure not recorded)."""
        out = tuple(torch.stack(v).mean() if v else torch.zeros(()) for v in (self.population, self.selectivity))
        self.population, self.selectivity = [], []
        return out


def vae_fingerprint(vae) -> str:
    """A short SHA-256 of the VAE's weights (names, shapes and bytes): equal for equal VAEs."""
    digest = hashlib.sha256()
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def cached_latents(vae, images, cache: Path | None, key: str) -> torch.Tensor:
    """The VAE's posterior means of ``images`` (see encode_all), read from ``cache`` when an earlier run
    with the same VAE weights and images (``key``) wrote them there, else encoded and written (atomically).
    Runs that continue one another (--init_from) so skip re-encoding the dataset; ``cache=None``: no cache.
    ``images``: a tensor, or a function that returns one, called only when the cache does not answer
    (so that a continuing run does not render the dataset either)."""
    from utils.storage import save_tensors

    device = next(vae.parameters()).device
    path = cache / f"latents-{vae_fingerprint(vae)}-{key}.safetensors" if cache is not None else None
    if path is not None and path.is_file():
        cached = _read_cached(path, device, vae.config.latent_channels)
        if cached is not None:
            return cached
    images = images() if callable(images) else images
    latents = encode_all(vae, images).contiguous()  # the VAE returns a channels-last layout; a cache hit reads a contiguous
    # one, and the layout changes the float sums of training, so both answers take the same layout
    if path is not None:
        save_tensors(path, {"latents": latents.cpu()}, {"key": key, "count": len(images)})
    return latents


def _read_cached(path: Path, device, channels: int) -> torch.Tensor | None:
    """The latents a cache file holds, or None when it cannot be read or holds no [n, channels, h, w] tensor
    (a damaged or foreign file: the caller encodes again and replaces it, atomically)."""
    from safetensors import SafetensorError

    from utils.storage import load_tensors

    try:
        latents = load_tensors(path, device)[0].get("latents")
    except (SafetensorError, OSError, ValueError):
        return None
    return latents if latents is not None and latents.ndim == 4 and latents.shape[1] == channels and latents.is_floating_point() else None


@torch.no_grad()
def encode_all(vae, images: torch.Tensor) -> torch.Tensor:
    """Posterior means of all images (on any device; encoded on the VAE's), [n, latent_channels, 16, 16] on the VAE's device."""
    vae.eval()
    device = next(vae.parameters()).device
    return torch.cat([vae.encode(images[i : i + 256].to(device)).latent_dist.mean for i in range(0, len(images), 256)])


def save_pipeline(out: Path, vae, text, tokenizer, unet) -> None:
    """Save a StableDiffusionPipeline folder (DDIM scheduler, the word tokenizer) with these parts."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    ddim = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae.eval(), text_encoder=text.eval(), tokenizer=tokenizer, unet=unet, scheduler=ddim,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(out))
    write_word_tokenizer(out / "tokenizer")
    text.train()


def save_run(out: Path, vae, text, tokenizer, unet, report: dict) -> None:
    """Save the pipeline, then ``training.json``, the mark of a finished save: it is removed first, so a run stopped
    while saving leaves a folder that --init_from and --vae_from refuse instead of continuing from half-written weights."""
    (out / "training.json").unlink(missing_ok=True)
    save_pipeline(out, vae, text, tokenizer, unet)
    write_text(out / "training.json", json.dumps(report, indent=2) + "\n")


# what this script writes into --out: a folder holding anything else is the user's and is refused
RUN_ENTRIES = {"model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler", "training.json", "train.log"}


def check_out(value: str) -> Path:
    """--out as a folder to write into: new, empty, or one that holds only what this script writes; else UsageError."""
    path = output_folder(value, "--out")
    if path.is_dir():
        foreign = sorted(entry.name for entry in path.iterdir() if entry.name not in RUN_ENTRIES)
        if foreign:
            raise UsageError(f"--out {value} holds {foreign[0]}, which demo/train_model.py did not write; pass a new folder or an earlier --out of this script")
    return path


def finished_run(folder: str, option: str, parts: tuple[str, ...], key: str) -> dict:
    """The training.json of an earlier run's folder, checked: it exists (the save finished), is JSON with a numeric
    ``key``, and the folder has ``parts`` (subfolders with a config.json); else UsageError."""
    path = Path(folder)
    what = "an --out of a finished demo/train_model.py run"
    if not path.is_dir():
        raise UsageError(f"{option} {folder} is not a folder; pass {what}")
    if not (path / "training.json").is_file():
        raise UsageError(f"{option} {folder} has no training.json (its run did not finish saving, or another tool wrote it); pass {what}")
    report = read_json(path / "training.json", what)
    value = report.get(key) if isinstance(report, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{option} {folder}: its training.json has no {key}; pass {what}")
    for part in parts:
        if not (path / part / "config.json").is_file():
            raise UsageError(f"{option} {folder} has no {part}/config.json; pass {what}")
    return report


def part_config(folder: str, part: str) -> dict:
    """The config.json of a pipeline part (already known to exist), as a mapping (empty when it is not one)."""
    config = read_json(Path(folder) / part / "config.json", "a pipeline folder written by demo/train_model.py")
    return config if isinstance(config, dict) else {}


def check_args(args) -> dict:
    """UsageError (one sentence) for an option that would fail or mislead only after minutes of work: counts, rates
    and weights (finite, in range), the device, the --out folder, and the folders continued from (finished runs whose
    latent channels match --latent_channels). Returns {"init_from": training.json, "vae_from": training.json}."""
    integer(args.steps, "--steps", 0)
    integer(args.images, "--images")
    integer(args.batch, "--batch")
    integer(args.seed, "--seed", 0)
    integer(args.latent_channels, "--latent_channels")
    integer(args.t_groups, "--t_groups")
    if not args.vae_from:
        integer(args.vae_steps, "--vae_steps")
    number(args.minutes, "--minutes", 0)
    number(args.lr, "--lr", 0, open_low=True)
    for option in ("offset_noise", "ffn_sparsity", "ffn_selectivity", "snr_gamma", "save_every"):
        number(getattr(args, option), f"--{option}", 0)
    if args.ffn_selectivity > 0 and args.batch % args.t_groups:
        raise UsageError(f"--batch {args.batch} must be a multiple of --t_groups {args.t_groups} with --ffn_selectivity")
    device_name(args.device)
    check_out(args.out)
    if args.latent_cache:
        output_folder(args.latent_cache, "--latent_cache")
    runs = {}
    for option, parts, key, channels in (("init_from", ("unet", "text_encoder"), "steps", ("unet", "in_channels")),
                                         ("vae_from", ("vae",), "vae_loss", ("vae", "latent_channels"))):
        folder = getattr(args, option)
        if folder:
            runs[option] = finished_run(folder, f"--{option}", parts, key)
            found = part_config(folder, channels[0]).get(channels[1])
            if found != args.latent_channels:
                raise UsageError(f"--{option} {folder} has {found} latent channels, not --latent_channels {args.latent_channels}; pass the same number")
    return runs


def load_part(cls, folder: str, part: str, option: str):
    """``cls.from_pretrained(folder, subfolder=part)``; UsageError when the weights do not load."""
    try:
        return cls.from_pretrained(folder, subfolder=part)
    except (OSError, ValueError, RuntimeError) as err:
        raise UsageError(f"--{option} {folder}: its {part} does not load ({first_line(err)}); pass an --out of a finished demo/train_model.py run") from None


@torch.no_grad()
def judge_reconstructions(vae, count: int = 512) -> dict[str, float]:
    """The shipped judge's accuracy per attribute on VAE reconstructions of fresh renders: the ceiling
    of what generations decoded by this VAE can reach (the VAE may sit on any device; the judge runs on the CPU)."""
    from demo.judge import REPO_JUDGE, accuracies, load_judge, reconstruct, rendered

    images, labels = rendered(count, 12345)
    device = next(vae.parameters()).device
    return {k: round(v, 4) for k, v in accuracies(load_judge(REPO_JUDGE), reconstruct(vae, images.to(device)).cpu(), labels).items()}


def build_parser() -> argparse.ArgumentParser:
    """The command line's options (checked by check_args)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHS), default="sd1")
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of the UNet/text training")
    parser.add_argument("--steps", type=int, default=0, help="stop after this many UNet/text steps of this run (0: only --minutes stops it)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--images", type=int, default=40000)
    parser.add_argument("--vae_steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latent_channels", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--offset_noise", type=float, default=0.3,
                        help="std of a per-channel constant added to the training noise, so that the initial noise's mean cannot decide the background")
    parser.add_argument("--ffn_sparsity", type=float, default=0.0,
                        help="weight of a Hoyer sparsity penalty on the FFN hidden activations, per token across neurons (0: none); a generic regulariser, not concept-specific")
    parser.add_argument("--ffn_selectivity", type=float, default=0.0,
                        help="weight of a Hoyer penalty per FFN neuron across the images of a batch group (0: none): neurons that fire for few images; generic, not concept-specific")
    parser.add_argument("--t_groups", type=int, default=8, help="with --ffn_selectivity: the batch is this many groups of images that share a timestep")
    parser.add_argument("--snr_gamma", type=float, default=5.0, help="min-SNR loss weighting (0: plain epsilon MSE)")
    parser.add_argument("--save_every", type=float, default=0.0, help="minutes between checkpoints of the pipeline (0: only at the end)")
    parser.add_argument("--init_from", default=None, help="a pipeline folder of this script whose UNet and text encoder training continues from")
    parser.add_argument("--vae_from", default=None, help="a pipeline folder whose trained VAE is reused instead of training one")
    parser.add_argument("--latent_cache", default=None,
                        help="a folder for the encoded dataset, keyed by the VAE's weights and the images, so that continued runs skip the encoding ('' or unset: none)")
    return parser


def run_log(out: Path):
    """A ``log(text)`` that prints a timed line and appends it to ``out/train.log``."""
    logfile = (out / "train.log").open("a")

    def log(text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        print(line, flush=True)
        logfile.write(line + "\n")
        logfile.flush()

    return log


def initial_models(args, runs: dict, log):
    """(tokenizer, vae, unet, text, steps before this run): built fresh (the global seed already set), the UNet and the
    text encoder continued from --init_from when given."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="word-tokenizer-") as tok_dir:  # nothing is left beside --out
        vocab_size = write_word_tokenizer(Path(tok_dir))
        tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=MAX_TOKENS)
    vae, unet, text = build_models(args.arch, vocab_size, tokenizer, args.latent_channels)
    steps_before = 0
    if args.init_from:  # continue: the saved (EMA) UNet and the text encoder are the starting point
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        unet = load_part(UNet2DConditionModel, args.init_from, "unet", "init_from")
        text = load_part(CLIPTextModel, args.init_from, "text_encoder", "init_from")
        steps_before = int(runs["init_from"]["steps"])
        log(f"continuing from {args.init_from} after {steps_before} steps")
    log(f"arch {args.arch}: unet {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M parameters, text {sum(p.numel() for p in text.parameters()) / 1e6:.2f} M")
    return tokenizer, vae, unet, text, steps_before


def vae_and_latents(args, runs: dict, vae, items, device, log):
    """Stage 1 and 2: (vae, scaled latents of the dataset, vae loss, latent scaling). The VAE is trained here or taken
    from --vae_from; the latents come from --latent_cache when it holds them for this VAE and dataset."""
    cache = Path(args.latent_cache) if args.latent_cache else None
    data_key = f"images{args.images}-seed{args.seed}"  # dataset() and render() are deterministic in these
    if args.vae_from:
        from diffusers import AutoencoderKL

        vae = load_part(AutoencoderKL, args.vae_from, "vae", "vae_from").to(device)
        vae_loss = runs["vae_from"]["vae_loss"]
        scaling = vae.config.scaling_factor
        latents = cached_latents(vae, lambda: images_tensor(items), cache, data_key) * scaling  # rendered only on a cache miss
    else:
        images = images_tensor(items)
        vae_loss = train_vae(vae, images, args.vae_steps, log)
        latents = cached_latents(vae, images, cache, data_key)
        scaling = float(1.0 / latents.std())
        vae.register_to_config(scaling_factor=scaling)
        latents = latents * scaling
    return vae, latents, vae_loss, scaling


def caption_tokens(tokenizer, items, device, log):
    """(token ids of every caption, token ids of the empty caption), on ``device``."""
    captions = [scene.caption() for scene, _ in items]
    ids = tokenizer(captions, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt").input_ids.to(device)
    empty = tokenizer([""], padding="max_length", max_length=MAX_TOKENS, return_tensors="pt").input_ids.to(device)
    log(f"longest caption: {int((ids != tokenizer.pad_token_id).sum(1).max())} tokens")
    return ids, empty


def draw_batch(args, latents, ids, empty, generator, groups: int, device):
    """One training batch from the seeded CPU ``generator``: (clean latents, caption tokens with 10% emptied, noise,
    timesteps). The draws come in a fixed order, so a step-capped run draws the same batches on any device."""
    idx = torch.randint(len(latents), (args.batch,), generator=generator).to(device)
    drop = torch.rand(args.batch, generator=generator) < 0.1
    tokens = ids[idx].clone()
    tokens[drop.to(device)] = empty
    x0 = latents[idx]
    noise = torch.randn(x0.shape, generator=generator)
    if args.offset_noise > 0:  # offset noise (Guttenberg 2023): with 16x16 latents the mean of pure noise otherwise predicts the background
        noise = noise + args.offset_noise * torch.randn(x0.shape[0], x0.shape[1], 1, 1, generator=generator)
    noise = noise.to(device)
    if groups > 1:  # groups of images that share a timestep (see FFNSparsity)
        t = torch.randint(0, 1000, (groups,), generator=generator).repeat_interleave(args.batch // groups)
    else:
        t = torch.randint(0, 1000, (args.batch,), generator=generator)
    return x0, tokens, noise, t.to(device)


def denoising_loss(unet, text, scheduler, snr, batch, snr_gamma: float) -> torch.Tensor:
    """The epsilon-prediction MSE of one batch, min-SNR-gamma weighted when ``snr_gamma`` > 0."""
    x0, tokens, noise, t = batch
    noisy = scheduler.add_noise(x0, noise, t)
    pred = unet(noisy, t, encoder_hidden_states=text(tokens)[0]).sample
    per_image = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
    if snr_gamma > 0:  # min-SNR-gamma weighting (Hang et al. 2023) for epsilon prediction
        per_image = per_image * (snr[t].clamp(max=snr_gamma) / snr[t])
    return per_image.mean()


class Training:
    """Stage 3: the UNet and the text encoder trained jointly (AdamW, gradient clipping, EMA of the UNet with
    warm-up), optionally with the FFN Hoyer penalties; ``run`` trains until the deadline or the step cap."""

    def __init__(self, args, unet, text, latents, ids, empty, device, steps_before: int) -> None:
        from diffusers import DDPMScheduler

        self.args, self.unet, self.text, self.device, self.steps_before = args, unet, text, device, steps_before
        self.latents, self.ids, self.empty = latents, ids, empty
        self.scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
        self.ema = copy.deepcopy(unet).eval()
        self.params = list(unet.parameters()) + list(text.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=args.lr, weight_decay=1e-2)
        self.snr = (self.scheduler.alphas_cumprod / (1 - self.scheduler.alphas_cumprod)).to(device)
        self.ema_params, self.unet_params = list(self.ema.parameters()), list(unet.parameters())
        self.generator = torch.Generator().manual_seed(args.seed + 1)
        self.step, self.running, self.measured = 0, None, None  # measured: running (population, selectivity) Hoyer measures
        self.warm_steps, self.warm_time = 10, None  # the step time is measured after the first steps (warm-up)
        self.groups = args.t_groups if args.ffn_selectivity > 0 else 1

    def run(self, checkpoint, log) -> float:
        """Train; ``checkpoint()`` is called every --save_every minutes. Returns the time the loop ended."""
        args = self.args
        self.unet.train()
        self.text.train()
        deadline, last_save = time.time() + 60 * args.minutes, time.time()
        regularised = args.ffn_sparsity > 0 or args.ffn_selectivity > 0
        # only the measures with a weight are recorded (a zero-weighted recorded term would still cost its backward pass)
        with FFNSparsity(self.unet, self.groups, args.ffn_sparsity > 0, args.ffn_selectivity > 0) if regularised else contextlib.nullcontext() as sparsity:
            while time.time() < deadline and (args.steps <= 0 or self.step < args.steps):
                self.train_step(sparsity)
                if self.step == self.warm_steps:
                    self.warm_time = time.time()
                if self.step % 100 == 0:
                    log(f"step {self.steps_before + self.step}: loss {float(self.running):.4f}{self.hoyer_text()}")
                if args.save_every and time.time() > last_save + 60 * args.save_every:  # a checkpoint to look at while training runs
                    checkpoint()
                    last_save = time.time()
                    log(f"checkpoint saved at step {self.steps_before + self.step}")
        return time.time()

    def train_step(self, sparsity) -> None:
        """One optimiser step on one drawn batch, then the EMA update and the running measures."""
        args = self.args
        batch = draw_batch(args, self.latents, self.ids, self.empty, self.generator, self.groups, self.device)
        loss = denoising_loss(self.unet, self.text, self.scheduler, self.snr, batch, args.snr_gamma)
        total = loss
        if sparsity is not None:
            population, selectivity = sparsity.take()  # a measure not recorded is a constant 0: no backward cost
            total = loss + args.ffn_sparsity * population + args.ffn_selectivity * selectivity
            now = torch.stack([population.detach(), selectivity.detach()])  # kept on the device: no sync per step
            self.measured = now if self.measured is None else 0.98 * self.measured + 0.02 * now
        self.optimizer.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        with torch.no_grad():  # EMA with warm-up: early averages must not keep the random initialisation
            decay = min(0.999, (1 + self.step + self.steps_before) / (10 + self.step + self.steps_before))
            torch._foreach_lerp_(self.ema_params, self.unet_params, 1.0 - decay)
        self.running = loss.detach() if self.running is None else 0.98 * self.running + 0.02 * loss.detach()
        self.step += 1

    def hoyer_text(self) -> str:
        """The running Hoyer measures with a weight, for the log line."""
        if self.measured is None:
            return ""
        return "".join(f", ffn hoyer {name} {float(value):.3f}" for name, value, weight in
                       zip(("population", "selectivity"), self.measured, (self.args.ffn_sparsity, self.args.ffn_selectivity)) if weight > 0)

    def seconds_per_step(self, loop_end: float) -> float | None:
        """Mean time of the steps after the warm-up ones (None when too few)."""
        if self.warm_time is None or self.step <= self.warm_steps:
            return None
        return (loop_end - self.warm_time) / (self.step - self.warm_steps)


def training_report(args, training: Training, vae_loss, vae_judged, device, started: float, loop_end: float) -> dict:
    """training.json: the settings, the losses, the Hoyer measures and the timings of a finished run."""
    measured, step = training.measured, training.step
    return {"arch": args.arch, "unet_parameters": sum(p.numel() for p in training.unet.parameters()), "steps": training.steps_before + step,
            "init_from": args.init_from, "steps_this_run": step, "batch": args.batch,
            "final_loss": float(training.running) if training.running is not None else None, "vae_loss": vae_loss, "vae_judge_accuracy": vae_judged, "lr": args.lr, "snr_gamma": args.snr_gamma, "offset_noise": args.offset_noise,
            "ffn_sparsity": args.ffn_sparsity, "ffn_selectivity": args.ffn_selectivity, "t_groups": training.groups,
            "ffn_hoyer_population": float(measured[0]) if measured is not None and args.ffn_sparsity > 0 else None,
            "ffn_hoyer_selectivity": float(measured[1]) if measured is not None and args.ffn_selectivity > 0 else None,
            "latent_channels": args.latent_channels, "vae_from": args.vae_from, "threads": torch.get_num_threads(), "device": str(device), "steps_cap": args.steps, "train_seconds": time.time() - started,
            "seconds_per_step": training.seconds_per_step(loop_end), "images": args.images, "seed": args.seed,
            "ffn_layers": len(select_modules(training.unet, get_variant("unet")))}


def main(argv=None) -> dict:
    """Parse ``argv`` (checked before anything is written), train, save the pipeline and training.json into --out
    (its log: --out/train.log); return the training report."""
    args = build_parser().parse_args(argv)
    runs = check_args(args)
    device = resolve_device(args.device)  # before anything is written: a missing GPU leaves no folder behind
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = run_log(out)

    torch.manual_seed(args.seed)
    started = time.time()
    tokenizer, vae, unet, text, steps_before = initial_models(args, runs, log)
    items = dataset(args.images, args.seed)
    vae, unet, text = vae.to(device), unet.to(device), text.to(device)
    vae, latents, vae_loss, scaling = vae_and_latents(args, runs, vae, items, device, log)
    vae_judged = judge_reconstructions(vae.eval())
    log(f"vae done: loss {vae_loss:.5f}, latent scaling {scaling:.4f}, judge on reconstructions {vae_judged} ({time.time() - started:.0f} s)")
    ids, empty = caption_tokens(tokenizer, items, device, log)

    training = Training(args, unet, text, latents, ids, empty, device, steps_before)

    def checkpoint() -> None:
        save_run(out, vae, text, tokenizer, training.ema, {"arch": args.arch, "steps": steps_before + training.step, "final_loss": float(training.running),
                                                           "vae_loss": vae_loss, "checkpoint": True})

    loop_end = training.run(checkpoint, log)
    report = training_report(args, training, vae_loss, vae_judged, device, started, loop_end)
    save_run(out, vae, text, tokenizer, training.ema, report)
    log(json.dumps(report))
    return report


if __name__ == "__main__":
    run_cli(main)
