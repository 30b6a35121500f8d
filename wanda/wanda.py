"""Step 1: record the activation norms of a concept's prompt pairs and report its skilled neurons.

Writes results/<model>/<target>/activation_norms.safetensors (reused when every setting matches),
record_config.yaml, preview images and skilled_counts.json (skilled weights per step at
--skill_ratio). Masks for any skill_ratio are derived from the norms later, in seconds.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.concepts import concept_from_args  # noqa: E402
from utils.config import build_parser, concept_hyperparameters, resolve_config  # noqa: E402
from utils.errors import run_cli  # noqa: E402


def main(argv=None) -> None:
    """Parse ``argv``, check it, record (or reuse) the norms and write the skilled-neuron counts."""
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    config = resolve_config(args)
    concept = concept_from_args(args, config)
    skill_ratio, tau = concept_hyperparameters(config, concept.kind)

    import json

    from utils import distributed
    from utils.paths import concept_dir
    from utils.skilled import skilled_mask
    from utils.storage import write_text
    from utils.workflow import Session, setup_logging

    setup_logging()
    session = Session(config)
    norms = session.norms(concept, config["timesteps"], preview=True)
    weights = session.weights()
    steps = next(iter(norms.values())).shape[1]
    counts = [
        sum(int(skilled_mask(weights[l], n[0, t], n[1, t], skill_ratio).sum()) for l, n in norms.items())
        for t in range(min(steps, tau))
    ]
    scored = sum(w.numel() for w in weights.values())
    out = concept_dir(config["res_path"], config["model_id"], concept.name)
    report = {"skill_ratio": skill_ratio, "layers": list(norms), "steps_recorded": steps, "scored_weights": scored, "skilled_per_step": counts}
    if distributed.is_main():  # under accelerate launch the other processes write and print nothing
        write_text(out / "skilled_counts.json", json.dumps(report, indent=2))
        print(f"{concept.name}: {len(concept.pairs)} prompt pairs, {len(norms)} layers, {steps} steps recorded -> {out}")
        print("skilled weights per step (first tau): " + ", ".join(f"t{t}={c / scored:.2%}" for t, c in enumerate(counts)))
    distributed.finish()


if __name__ == "__main__":
    run_cli(main)
