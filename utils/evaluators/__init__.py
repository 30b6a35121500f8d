"""Evaluators of the paper's benchmarks, each a small module whose default is the paper's model.

- ``clip_judge``: CLIP embeddings, CLIP scores, zero-shot labels (artists, COCO, gender, memorization),
  and the pure metrics ``clip_score``, ``fraction_dropped``, ``gender_reversal``.
- ``nudity``: the NudeNet 3.x detector with the paper's nine exposed-body labels, and ``summarize_nudity``.
- ``object_classifier``: torchvision ResNet50 top-1 on the Imagenette classes, and ``accuracy``.
- ``sscd``: SSCD copy-detection embeddings (a TorchScript file) and ``cosine_similarities``.
- ``fid``: ``frechet_distance`` / ``feature_statistics`` and the pytorch-fid InceptionV3 extractor.

Every evaluator computes in float32, loads nothing from the network unless the user's model id asks
for it, and raises ``utils.errors.UsageError`` with one sentence when its model cannot be loaded.
"""
