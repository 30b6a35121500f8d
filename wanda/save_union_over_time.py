"""Step 3: unite the skilled neurons of the first tau steps and save the pruned model as a mask.

A weight is pruned when it is skilled at more than select_ratio * tau of the steps 0..tau-1.
Writes results/<model>/<target>/pruned/<run>/prune_mask.safetensors and config.yaml; with
--export_diffusers DIR also a standard diffusers folder of the pruned component (the UNet or
transformer; the text encoder for --hook_module text, text-2, text-3).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.concepts import concept_from_args  # noqa: E402
from utils.config import build_parser, concept_hyperparameters, concept_select_ratio, resolve_config  # noqa: E402
from utils.errors import run_cli  # noqa: E402


def main(argv=None) -> None:
    """Parse ``argv``, derive the union mask and save it (and the exported component)."""
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument("--export_diffusers", default=None, help="also write the pruned component as a diffusers folder here")
    args = parser.parse_args(argv)
    config = resolve_config(args)
    if args.export_diffusers:
        from utils.pruning import check_export_dir

        check_export_dir(args.export_diffusers)
    concept = concept_from_args(args, config)
    skill_ratio, tau = concept_hyperparameters(config, concept.kind)
    select_ratio = concept_select_ratio(config, concept.kind)

    from utils import distributed
    from utils.paths import concept_dir, run_name
    from utils.workflow import Session, describe_mask, save_mask_and_export, setup_logging, union_for_concept

    setup_logging()
    session = Session(config)
    tau = session.effective_tau(tau)
    masks = union_for_concept(session, concept, skill_ratio, tau, select_ratio)
    from utils.fills import fill_label

    name = run_name(skill_ratio, tau, select_ratio, session.variant.name, fill_label(config.get("fill"), config.get("fill_scale")))
    out = concept_dir(config["res_path"], config["model_id"], concept.name) / "pruned" / name / "prune_mask.safetensors"
    settings = {"targets": [concept.name], "skill_ratio": skill_ratio, "timesteps": tau, "select_ratio": select_ratio}
    meta = save_mask_and_export(session, masks, out, settings, args.export_diffusers)  # None on a launched run's other processes
    if meta is not None:
        print(describe_mask(meta, out))
        if args.export_diffusers:
            print(f"pruned {session.component_name} written to {args.export_diffusers}")
    distributed.finish()


if __name__ == "__main__":
    run_cli(main)
