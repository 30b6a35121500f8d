"""Measure the erasure table of a demo-world model: per concept, judge the model before and under every mask.

For one concept (attribute=value) the activation norms of its prompt pairs are recorded once; every
select_ratio x skill_ratio x tau then gives a union mask that applies only while its row is judged (the
weights are restored after each row). ``measure`` runs the whole table of a config (see demo/erasure_table.py)
and writes the report after each concept.
"""
from __future__ import annotations

import json
from itertools import product

import torch

from demo.concepts import check_concept, concept_pairs
from demo.measure import eval_scenes, evaluate

PIPELINE_BATCH = 32  # prompt pairs per pipeline call


def judged_row(pipe, judge, scenes, sampling: dict, modules=None, masks=None) -> dict:
    """The judge's scores of the pipeline as it is (``masks`` None) or while ``masks`` zero the weights of ``modules``.
    ``scenes``: (attribute, value, target scenes, other scenes)."""
    from utils.pruning import masked_weights

    attribute, value, targets, others = scenes
    if masks is None:
        return evaluate(pipe, judge, attribute, value, targets, others, sampling)[0]
    with masked_weights({name: module.weight.detach() for name, module in modules.items()}, masks):
        return evaluate(pipe, judge, attribute, value, targets, others, sampling)[0]


def mask_rows(pipe, judge, modules, weights, norms, scenes, args, sampling, calls: int, total: int) -> list[dict]:
    """One row per select_ratio x skill_ratio x tau: the union mask's pruned fraction of the UNet and the scores under it."""
    from utils.skilled import union_masks

    rows = []
    for select, ratio, tau_text in product(args.select_ratios, args.skill_ratios, args.taus):
        tau = calls if tau_text == "all" else min(int(tau_text), calls)
        masks = union_masks(weights, norms, ratio, tau, select)
        scores = judged_row(pipe, judge, scenes, sampling, modules, masks)
        row = {"skill_ratio": ratio, "tau": tau_text, "select_ratio": select,
               "pruned_fraction": sum(int(m.sum()) for m in masks.values()) / total, **scores}
        rows.append(row)
        print(f"sr {ratio} tau {tau_text}{f' select {select}' if select else ''}: {100 * row['pruned_fraction']:.2f}% pruned, "
              f"detection {row['detection']:.2f}, other accuracy {row['other_accuracy']:.2f}", flush=True)
    return rows


def ceiling_row(pipe, judge, modules, weights, scenes, sampling, total: int) -> dict:
    """Every weight of the hooked layers zeroed: what no mask of these layers can go beyond."""
    scores = judged_row(pipe, judge, scenes, sampling, modules, {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()})
    row = {"skill_ratio": "all weights", "tau": None, "pruned_fraction": sum(w.numel() for w in weights.values()) / total, **scores}
    print(f"every hooked weight zeroed: {100 * row['pruned_fraction']:.2f}% pruned, detection {scores['detection']:.2f}, "
          f"other accuracy {scores['other_accuracy']:.2f}", flush=True)
    return row


def concept_table(pipe, judge, modules, attribute: str, value: str, args, sampling: dict) -> list[dict]:
    """Rows of one concept's table: "before", then one per select_ratio x skill_ratio x tau (each mask only while it is judged),
    then, with ``args.ceiling``, one with every weight of the hooked layers zeroed (skill_ratio "all weights")."""
    from neuron_receivers.hook_variants import get_variant
    from utils.generation import count_unet_calls
    from utils.recording import record_norms

    weights = {name: m.weight.detach() for name, m in modules.items()}  # unpruned outside masked_weights
    norms = record_norms(pipe, concept_pairs(attribute, value, args.pairs, seed=args.seed), sampling, get_variant(args.hook_module), None)
    calls = count_unet_calls(pipe, args.num_inference_steps)
    scenes = (attribute, value, *eval_scenes(attribute, value, args.eval_prompts, args.eval_draw))
    total = sum(p.numel() for p in pipe.unet.parameters())
    rows = [{"skill_ratio": None, "tau": None, "pruned_fraction": 0.0, **judged_row(pipe, judge, scenes, sampling)}]
    print(f"{attribute}={value} before: detection {rows[0]['detection']:.2f}, other accuracy {rows[0]['other_accuracy']:.2f}", flush=True)
    rows += mask_rows(pipe, judge, modules, weights, norms, scenes, args, sampling, calls, total)
    if args.ceiling:
        rows.append(ceiling_row(pipe, judge, modules, weights, scenes, sampling, total))
    return rows


def measure(config: dict, pipe=None) -> dict:
    """Judge the model's generations, then every concept's table; write the report (and its config beside it) after
    each concept and return it. ``pipe``: an already loaded pipeline of the model to use instead of loading model_id."""
    from argparse import Namespace

    from demo.erasure_report import check_report_out, markdown, report_out
    from demo.judge import load_judge
    from demo.measure import generation_accuracy
    from neuron_receivers.hook_variants import get_variant, select_modules
    from utils.config import dump_yaml
    from utils.model_loading import load_pipeline, resolve_device
    from utils.storage import write_text

    args = Namespace(**config)
    out = check_report_out(report_out(config))  # a bad output path or judge is refused before the model is loaded
    judge = load_judge(args.judge)
    if pipe is None:
        pipe = load_pipeline(args.model_id, resolve_device(args.device), torch.float32)
    sampling = {"num_inference_steps": args.num_inference_steps, "guidance_scale": args.guidance_scale, "batch_size": PIPELINE_BATCH}
    modules = select_modules(pipe.unet, get_variant(args.hook_module))
    quality = generation_accuracy(pipe, judge, args.quality_prompts, sampling) if args.quality_prompts else {}
    print(f"judge accuracy on {args.quality_prompts} generations: {quality}", flush=True)
    settings = {k: v for k, v in config.items() if k not in ("show", "merge")}
    report = {"model": args.model_id, "settings": settings, "generation_accuracy": quality, "tables": {}}
    write_text(out.with_suffix(".config.yaml"), dump_yaml(settings))  # the resolved config beside the results
    for concept in args.concepts:
        attribute, value = check_concept(concept)
        report["tables"][concept] = concept_table(pipe, judge, modules, attribute, value, args, sampling)
        print(f"\n{concept}\n" + markdown(report["tables"][concept], concept) + "\n", flush=True)
        write_text(out, json.dumps(report, indent=2) + "\n")  # after each concept: a stopped run keeps the finished tables
    return report
