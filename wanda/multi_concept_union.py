"""Erase several concepts in one model: the union of each concept's pruning mask.

Each target uses its own paper hyper-parameters (skill_ratio, tau) unless --skill_ratio or
--timesteps is given for all. Norms are recorded for a target whose stored norms do not match.
Writes results/<model>/multi/<target+target+...>/prune_mask.safetensors and config.yaml.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.concepts import concept_for_config, slugify  # noqa: E402
from utils.config import build_parser, concept_hyperparameters, concept_select_ratio, resolve_config  # noqa: E402
from utils.errors import run_cli  # noqa: E402


def main(argv=None) -> None:
    """Parse ``argv``, unite the masks of every target and save one prune mask."""
    parser = build_parser(__doc__.splitlines()[0], concept_args="multi")
    parser.add_argument("--export_diffusers", default=None, help="also write the pruned component as a diffusers folder here")
    args = parser.parse_args(argv)
    config = resolve_config(args)
    if args.export_diffusers:
        from utils.pruning import check_export_dir

        check_export_dir(args.export_diffusers)
    concepts = [concept_for_config(config, target) for target in dict.fromkeys(args.targets)]
    settings = {c.name: (*concept_hyperparameters(config, c.kind), concept_select_ratio(config, c.kind)) for c in concepts}

    from utils import distributed
    from utils.paths import model_slug
    from utils.workflow import Session, describe_mask, save_mask_and_export, setup_logging, union_for_concept

    setup_logging()
    session = Session(config)
    settings = {name: (ratio, session.effective_tau(tau), select) for name, (ratio, tau, select) in settings.items()}
    combined = None
    for concept in concepts:
        ratio, tau, select = settings[concept.name]
        masks = union_for_concept(session, concept, ratio, tau, select)
        if distributed.is_main():
            print(f"{concept.name}: skill_ratio {ratio:g}, tau {tau}, select_ratio {select:g}: {sum(int(m.sum()) for m in masks.values()):,} weights")
        combined = masks if combined is None else {k: combined[k] | masks[k] for k in combined}
    name = slugify("+".join(slugify(c.name) for c in concepts))  # capped like any one name
    from utils.fills import fill_label

    label = fill_label(config.get("fill"), config.get("fill_scale"))
    name = name if label is None else f"{name}_{label}"
    out = Path(config["res_path"]) / model_slug(config["model_id"]) / "multi" / name / "prune_mask.safetensors"
    meta_settings = {
        "targets": [c.name for c in concepts],
        "per_target": {k: {"skill_ratio": r, "timesteps": t, "select_ratio": s} for k, (r, t, s) in settings.items()},
    }
    meta = save_mask_and_export(session, combined, out, meta_settings, args.export_diffusers)  # None on a launched run's other processes
    if meta is not None:
        print(describe_mask(meta, out))
    distributed.finish()


if __name__ == "__main__":
    run_cli(main)
