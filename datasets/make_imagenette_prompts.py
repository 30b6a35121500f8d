"""Write the object-erasure prompt set, ``datasets/imagenette_prompts.csv``.

For each of the 10 Imagenette classes in ``datasets/objects.txt`` (file order) it writes
10 prompt templates x 50 evaluation seeds = 500 rows, class-major, then template, then seed.
Columns: ``case_number,prompt,class,evaluation_seed``; case_number runs 0..4999.

The 50 seeds are drawn once from ``random.Random(0)`` and shared by every class and template,
so the output is deterministic: rerunning the script rewrites the CSV byte for byte.
Used by ``object_erase.py``.

    python datasets/make_imagenette_prompts.py            # rewrites datasets/imagenette_prompts.csv
    python datasets/make_imagenette_prompts.py --out x.csv
"""

import argparse
import csv
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

TEMPLATES = [
    "a photo of {a} {cls}",
    "an image of {a} {cls}",
    "a picture of {a} {cls}",
    "a photograph of {a} {cls}",
    "a close-up photo of {a} {cls}",
    "a high quality photo of {a} {cls}",
    "a realistic photo of {a} {cls}",
    "a bright photo of {a} {cls}",
    "a cropped photo of {a} {cls}",
    "a good photo of {a} {cls}",
]
N_SEEDS = 50
SEED_RNG = 0


def article(word):
    """'an' before a vowel sound (by first letter), else 'a'."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def read_classes(path):
    classes = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(classes) != 10:
        raise SystemExit(f"expected 10 classes in {path}, found {len(classes)}")
    return classes


def build_rows(classes):
    rng = random.Random(SEED_RNG)
    seeds = [rng.randint(0, 2**31 - 1) for _ in range(N_SEEDS)]
    rows = []
    for cls in classes:
        for template in TEMPLATES:
            prompt = template.format(a=article(cls), cls=cls)
            for seed in seeds:
                rows.append({"case_number": len(rows), "prompt": prompt, "class": cls, "evaluation_seed": seed})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", default=str(HERE / "objects.txt"), help="class list, one a line")
    parser.add_argument("--out", default=str(HERE / "imagenette_prompts.csv"), help="CSV to write")
    args = parser.parse_args()
    rows = build_rows(read_classes(args.objects))
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["case_number", "prompt", "class", "evaluation_seed"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
