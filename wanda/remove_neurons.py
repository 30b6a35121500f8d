"""Step 2: check that removing the skilled neurons of each step removes the concept.

Generates the target prompts twice with the same seeds: unedited, and with the per-step masks
applied at UNet call t (layer l uses W * (1 - mask[t][l])), for every recorded step or the first
--timesteps. Writes results/<model>/<target>/removal/<run>/pair_XXX.png (before | after) and config.yaml.
Under accelerate launch the recording is shared between the processes; the main process alone makes the images.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.concepts import concept_from_args  # noqa: E402
from utils.config import build_parser, concept_hyperparameters, resolve_config  # noqa: E402
from utils.errors import run_cli  # noqa: E402

REMOVAL_FILES = r"pair_\d+\.png|config\.yaml"  # what a removal folder holds


def main(argv=None) -> None:
    """Parse ``argv``, then save before/after images of the concept's target prompts."""
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    config = resolve_config(args)
    concept = concept_from_args(args, config)
    skill_ratio, _ = concept_hyperparameters(config, concept.kind)

    from tqdm.auto import tqdm

    from neuron_receivers.step_pruner import StepPruner
    from neuron_receivers.trace import trace_steps
    from utils.generation import run_pipeline, side_by_side
    from utils.paths import concept_dir, run_name
    from utils.storage import atomic_directory, check_replaceable, save_image
    from utils import distributed
    from utils.workflow import Session, save_run_config, setup_logging

    setup_logging()
    session = Session(config)
    steps = config["timesteps"]
    out_dir = concept_dir(config["res_path"], config["model_id"], concept.name) / "removal" / run_name(skill_ratio, steps, 0.0, session.variant.name)
    check_replaceable(out_dir, "removal folder", REMOVAL_FILES)
    norms = session.norms(concept, steps)
    if not distributed.is_main():  # the recording was shared; one process makes and writes the images
        distributed.finish()
        return
    pruner = StepPruner(session.weights(), norms, skill_ratio, steps or session.total_calls)
    pairs = concept.pairs[: int(config["num_images"])]
    size = int(config["batch_size"]) * 2
    with atomic_directory(out_dir, "removal folder", REMOVAL_FILES) as folder:  # replaced whole: no image of another run stays
        for start in tqdm(range(0, len(pairs), size), desc="before/after", unit="batch"):
            batch = pairs[start : start + size]
            prompts, seeds = [p.target for p in batch], [p.seed for p in batch]
            before = run_pipeline(session.pipe, prompts, seeds, config, output_type="pil")
            try:
                if session.variant.per_step:
                    with trace_steps(session.denoiser, {}, on_step=pruner.on_step):
                        after = run_pipeline(session.pipe, prompts, seeds, config, output_type="pil")
                else:
                    pruner.on_step(0)
                    after = run_pipeline(session.pipe, prompts, seeds, config, output_type="pil")
            finally:
                pruner.restore()
            for i, (b, a) in enumerate(zip(before, after)):
                save_image(folder / f"pair_{start + i:03d}.png", side_by_side([b, a]))
        save_run_config(folder, session.resolved_config(target=concept.name, skill_ratio=skill_ratio, removal_steps=pruner.num_steps))
    print(f"{len(pairs)} before|after images with skilled neurons removed at {pruner.num_steps} steps -> {out_dir}")
    distributed.finish()


if __name__ == "__main__":
    run_cli(main)
