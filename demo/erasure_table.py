"""Erasure table of a demo-world model: does ConceptPrune's FFN pruning remove a concept, and only it?

For one concept (an attribute value, e.g. --concept style=stripes or shape=circle) it records the
activation norms of N prompt pairs (target: a random scene with that value; base: the same scene
with the neutral value: style plain, or another shape / colour), derives the union masks for every
skill_ratio x tau, prunes, and judges generations: the detection rate of the concept on target
prompts, and the judge's accuracy on the other attributes of prompts without the concept, before
and after. Writes a JSON and prints a Markdown table.
Example: python demo/erasure_table.py --model models/demo-sd1 --concept style=stripes
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from demo.world import ATTRIBUTES, Scene, dataset  # noqa: E402

NEUTRAL = {"style": "plain", "size": None, "background": None}


def concept_pairs(attribute: str, value: str, count: int, seed: int):
    """(base, target) captions and seeds: target scenes carry ``value``; the base scene differs only there."""
    from utils.concepts import Concept, PromptPair

    rng = np.random.default_rng(seed)
    options = [v for v in ATTRIBUTES[attribute] if v != value]
    pairs = []
    for scene, render_seed in dataset(count, seed, **{attribute: value}):
        neutral = NEUTRAL.get(attribute) or options[rng.integers(len(options))]
        base = Scene(**{**scene.__dict__, attribute: neutral})
        pairs.append(PromptPair(base.caption(), scene.caption(), render_seed % (2**31)))
    return Concept(f"{attribute}={value}", "custom", tuple(pairs))


def judge_images(judge, images) -> dict[str, torch.Tensor]:
    """Judge predictions for PIL images."""
    from demo.judge import predict, to_tensor

    return predict(judge, to_tensor(np.stack([np.asarray(im.convert("RGB")) for im in images])))


def evaluate(pipe, judge, attribute: str, value: str, targets, others, config) -> dict:
    """Detection rate of ``value`` on target scenes; mean attribute accuracy on the other scenes."""
    from utils.generation import run_pipeline

    def generate(items):
        images = []
        for i in range(0, len(items), 64):
            chunk = items[i : i + 64]
            images += run_pipeline(pipe, [s.caption() for s, _ in chunk], [seed for _, seed in chunk], config, output_type="pil")
        return images

    index = ATTRIBUTES[attribute].index(value)
    detected = judge_images(judge, generate(targets))[attribute]
    predicted = judge_images(judge, generate(others))
    accuracy = {name: float(np.mean([int(predicted[name][i]) == scene.labels()[name] for i, (scene, _) in enumerate(others)])) for name in ATTRIBUTES if name != attribute}
    return {"detection": float((detected == index).float().mean()), "other_accuracy": float(np.mean(list(accuracy.values()))), "other_accuracy_per_attribute": accuracy}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--judge", default="demo/judge.safetensors")
    parser.add_argument("--concept", default="style=stripes", help="attribute=value")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--eval_prompts", type=int, default=64)
    parser.add_argument("--num_inference_steps", type=int, default=20)
    parser.add_argument("--guidance_scale", type=float, default=5.0)
    parser.add_argument("--skill_ratios", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.1])
    parser.add_argument("--taus", nargs="+", default=["5", "10", "all"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    attribute, value = args.concept.split("=")

    from demo.judge import load_judge
    from neuron_receivers.hook_variants import get_variant, select_modules
    from utils.generation import count_unet_calls
    from utils.model_loading import load_pipeline
    from utils.recording import record_norms
    from utils.skilled import union_masks

    pipe = load_pipeline(args.model, torch.device("cpu"), torch.float32)
    judge = load_judge(args.judge)
    config = {"num_inference_steps": args.num_inference_steps, "guidance_scale": args.guidance_scale, "batch_size": 32}
    variant = get_variant("unet")
    modules = select_modules(pipe.unet, variant)
    weights = {name: m.weight.detach().clone() for name, m in modules.items()}
    norms = record_norms(pipe, concept_pairs(attribute, value, args.pairs, seed=100), config, variant, None)
    calls = count_unet_calls(pipe, args.num_inference_steps)
    targets = dataset(args.eval_prompts, 200, **{attribute: value})
    others = [item for item in dataset(3 * args.eval_prompts, 300) if getattr(item[0], attribute) != value][: args.eval_prompts]
    total = sum(p.numel() for p in pipe.unet.parameters())
    rows = [{"skill_ratio": None, "tau": None, "pruned_fraction": 0.0, **evaluate(pipe, judge, attribute, value, targets, others, config)}]
    print(f"before: {rows[0]['detection']:.2f} detection, {rows[0]['other_accuracy']:.2f} other accuracy", flush=True)
    for ratio in args.skill_ratios:
        for tau_text in args.taus:
            tau = calls if tau_text == "all" else int(tau_text)
            masks = union_masks(weights, norms, ratio, tau)
            with torch.no_grad():
                for name, module in modules.items():
                    module.weight.copy_(weights[name]).masked_fill_(masks[name], 0.0)
            pruned = sum(int(m.sum()) for m in masks.values())
            row = {"skill_ratio": ratio, "tau": tau_text, "pruned_fraction": pruned / total, **evaluate(pipe, judge, attribute, value, targets, others, config)}
            rows.append(row)
            print(f"sr {ratio} tau {tau_text}: {100 * row['pruned_fraction']:.2f}% pruned, detection {row['detection']:.2f}, other accuracy {row['other_accuracy']:.2f}", flush=True)
    with torch.no_grad():
        for name, module in modules.items():
            module.weight.copy_(weights[name])
    report = {"model": args.model, "concept": args.concept, "settings": vars(args), "rows": rows}
    out = Path(args.out or Path(args.model).parent / f"{Path(args.model).name}-erasure-{attribute}-{value}.json")
    out.write_text(json.dumps(report, indent=2))
    print("| skill_ratio | tau | pruned % of UNet | detection | other attributes' accuracy |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['skill_ratio'] or 'before'} | {r['tau'] or '–'} | {100 * r['pruned_fraction']:.2f} | {r['detection']:.2f} | {r['other_accuracy']:.2f} |")
    return report


if __name__ == "__main__":
    main()
