"""A data-free revival attack on pruned layers, and the detectors an attacker uses to find the pruned weights.

"Roots Beneath the Cut" (CVPR 2026, arXiv 2603.06640) revives a concept erased by zeroing a few weights of
each layer with no data and no training: locate the zeroed weights, fill them by low-rank matrix completion
(SoftImpute) of the layer's surviving weights, keep the signs of the largest 60% of the completed values (by
magnitude) and set their magnitudes above the row's largest surviving weight. This module implements that
attack from the description (``locate_zeros``, ``soft_impute``, ``revive_weight``, ``revive``) and, for fills
that are not exact zeros, simple detectors of the pruned positions with their ROC AUC (``detector_scores``,
``locating_auc``, ``locating_aucs``, ``best_detector``).

Everything works on 2-D weight tensors (dicts name -> tensor for whole models), in float32 on the weight's
device, and returns new tensors: no model or benchmark knowledge here.
"""
from __future__ import annotations

import torch

DEFAULT_SHRINKAGE = 0.01
"""SoftImpute's lambda as a fraction of the largest singular value of the matrix filled with row means.

A fraction (not an absolute lambda) so one setting fits layers of every scale. On a planted rank-3 60x80
matrix with 20% hidden (seeds 0-2), 0.01 recovers the hidden entries to 1.4-1.6% relative error, 0.02 to 3%
and 0.05 only to 7-8% (soft-thresholding shrinks every kept singular value by lambda, biasing the completion
towards zero); 0.005 is closer on some seeds but does not converge within 100 iterations on others, and 0.001
leaves 30-60%. See ``tests/test_revival.py``."""

RANK_OVERSAMPLE = 8
"""Extra directions of the randomized subspace when ``rank`` caps the SVD (kept: ``rank``; iterated: rank + 8)."""

MAX_AUC_ENTRIES = 4_000_000
"""Above this many entries ``locating_auc`` scores a seeded uniform sub-sample of this size."""

AUC_SEED = 0
"""Seed of ``locating_auc``'s sub-sample (drawn on the CPU, so the same on every device)."""

DETECTORS = ("zero", "magnitude", "row_z", "col_z", "residual")

RESTS = ("completed", "keep")


def locate_zeros(weight: torch.Tensor) -> torch.Tensor:
    """Bool mask of ``weight``'s shape, True at its exact zeros: the attack's locating step against a zero fill."""
    return weight.detach() == 0


# ---------------------------------------------------------------- SoftImpute


def _row_mean_fill(matrix: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """``matrix`` (float32) with each unobserved entry replaced by its row's observed mean (0 for a row with none)."""
    count = observed.sum(dim=1, keepdim=True).clamp_min(1)
    mean = torch.where(observed, matrix, torch.zeros_like(matrix)).sum(dim=1, keepdim=True) / count
    return torch.where(observed, matrix, mean.expand_as(matrix))


def _svd(matrix: torch.Tensor, rank: int | None, basis: torch.Tensor | None):
    """(U, S, Vh, basis) of ``matrix``: the full thin SVD when ``rank`` is None, else the top ``rank`` triplets
    of a randomized subspace iteration (Halko, Martinsson, Tropp 2011) started from ``basis`` [in, q]; the
    returned basis (the right singular vectors found, [in, q]) warm-starts the next call."""
    if rank is None:
        u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
        return u, s, vh, None
    q = basis.shape[1]
    y = matrix @ basis
    # One extra power step (A A^T) sharpens the subspace at the cost of two more products.
    y = matrix @ (matrix.T @ torch.linalg.qr(y).Q)
    q_left = torch.linalg.qr(y).Q
    u_small, s, vh = torch.linalg.svd(q_left.T @ matrix, full_matrices=False)
    u = q_left @ u_small
    return u[:, :rank], s[:rank], vh[:rank], vh[:q].T


def _start_basis(matrix: torch.Tensor, rank: int | None) -> torch.Tensor | None:
    """A seeded Gaussian [in, rank + RANK_OVERSAMPLE] (at most the matrix's smaller side) on the matrix's device."""
    if rank is None:
        return None
    q = min(int(rank) + RANK_OVERSAMPLE, min(matrix.shape))
    gen = torch.Generator().manual_seed(0)
    return torch.randn(matrix.shape[1], q, generator=gen).to(matrix.device)


def _svt(matrix: torch.Tensor, fraction: float | None, rank: int | None, basis=None, lam=None):
    """Singular value thresholding: (U diag(max(S - lambda, 0)) Vh, lambda, basis). lambda = ``lam`` if given,
    else ``fraction`` * the largest singular value of ``matrix``."""
    if basis is None:
        basis = _start_basis(matrix, rank)
    u, s, vh, basis = _svd(matrix, rank, basis)
    if lam is None:
        lam = fraction * float(s[0]) if s.numel() else 0.0
    shrunk = (s - lam).clamp_min(0)
    keep = int((shrunk > 0).sum())
    low = (u[:, :keep] * shrunk[:keep]) @ vh[:keep]
    return low, lam, basis


def soft_impute(
    matrix: torch.Tensor,
    observed: torch.Tensor,
    shrinkage: float | None = None,
    rank: int | None = None,
    max_iters: int = 100,
    tol: float = 1e-4,
) -> torch.Tensor:
    """Complete the entries of the 2-D ``matrix`` where the bool ``observed`` is False (SoftImpute: Mazumder,
    Hastie, Tibshirani 2010). Returns a new tensor of ``matrix``'s dtype and device whose observed entries are
    exactly ``matrix``'s and whose unobserved entries are the completion.

    Start: unobserved entries at their row's observed mean. Iterate Z <- SVT_lambda(P_obs(M) + P_unobs(Z)),
    SVT soft-thresholding the singular values by lambda = ``shrinkage`` (a fraction, default
    ``DEFAULT_SHRINKAGE``) * the largest singular value of the starting matrix, fixed for all iterations.
    Stop when ||Z_new - Z||_F / ||Z||_F < ``tol`` or after ``max_iters`` iterations. ``rank``: None for a full
    SVD per iteration (small layers), else at most ``rank`` singular values, found by a randomized subspace
    iteration warm-started from the previous iterate (seeded, so deterministic; large layers). Math in float32.

    Not ``torch.svd_lowrank``: it draws a fresh random subspace from the global RNG at every call, so with
    ``rank`` well below a noise-like weight's rank successive iterates differ by its sampling error (a relative
    change stuck near 0.14 on a 1280x5120 weight at rank 64) and ``tol`` never stops the loop; the warm start
    costs the same per iteration (one randomized SVD) and converges.
    """
    if matrix.dim() != 2 or observed.shape != matrix.shape:
        raise ValueError(f"need a 2-D matrix and a bool mask of its shape, got {tuple(matrix.shape)} and {tuple(observed.shape)}")
    fraction = DEFAULT_SHRINKAGE if shrinkage is None else float(shrinkage)
    m = matrix.detach().float()
    obs = observed.to(m.device, torch.bool)
    z = _row_mean_fill(m, obs)
    lam, basis = None, None
    for _ in range(max_iters):
        new, lam, basis = _svt(torch.where(obs, m, z), fraction, rank, basis, lam)
        change = torch.linalg.norm(new - z) / torch.linalg.norm(z).clamp_min(1e-30)
        z = new
        if change < tol:
            break
    return torch.where(obs, m, z).to(matrix.dtype)


# ---------------------------------------------------------------- the attack


def _kept_count(located: torch.Tensor, sign_ratio: float) -> torch.Tensor:
    """Per row: ceil(sign_ratio * located in the row) (rounded to 9 decimals first, so 0.7 * 10 is 7, not 8),
    at least 1 where the row has a located entry."""
    n = located.sum(dim=1).double()
    k = torch.ceil(torch.round(n * sign_ratio * 1e9) / 1e9)
    return torch.minimum(k.clamp_min(1), n).long()


def _rank_in_row(scores: torch.Tensor) -> torch.Tensor:
    """Per row, the 0-based position of each entry when the row is sorted by descending score (ties by column)."""
    order = scores.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    positions = torch.arange(scores.shape[1], device=scores.device).expand_as(order)
    return ranks.scatter_(1, order, positions)


def _row_ceiling(w: torch.Tensor, located: torch.Tensor) -> torch.Tensor:
    """Per row [out, 1]: the largest |surviving weight|; for a row with none, the layer's largest (0 if none)."""
    surviving = torch.where(located, torch.zeros_like(w), w.abs())
    row_max = surviving.amax(dim=1, keepdim=True)
    has = (~located).any(dim=1, keepdim=True)
    return torch.where(has, row_max, surviving.amax())


def revive_weight(
    weight: torch.Tensor,
    located: torch.Tensor,
    sign_ratio: float = 0.6,
    margin: float = 0.05,
    shrinkage: float | None = None,
    rank: int | None = None,
    max_iters: int = 100,
    rest: str = "completed",
) -> torch.Tensor:
    """The revival attack on one 2-D ``weight`` at the True entries of ``located``; returns a new tensor of the
    weight's dtype (``weight`` is unchanged); entries not located are copied unchanged.

    1. Complete the located entries from the others: ``soft_impute(weight, ~located, shrinkage, rank, max_iters)``.
    2. In each row, keep the k = ceil(``sign_ratio`` * located-in-row) located entries of largest |completed
       value| (at least one where the row has any; ties by column) and write sign(completed) * (1 + ``margin``)
       * max |surviving weight of the row| (a completed 0 counts as positive; a row with no surviving weight
       uses the layer's largest surviving |w|).
    3. The other located entries: ``rest="completed"`` (default, the paper's natural reading: only the kept
       values get the large magnitude, the rest is the completion) writes their completed value;
       ``rest="keep"`` leaves them as found in ``weight``.
    """
    if not 0 < sign_ratio <= 1:
        raise ValueError(f"sign_ratio must be in (0, 1], got {sign_ratio}")
    if rest not in RESTS:
        raise ValueError(f"unknown rest {rest!r}; choose one of {', '.join(RESTS)}")
    located = located.to(weight.device, torch.bool)
    if not bool(located.any()):
        return weight.detach().clone()
    w = weight.detach().float()
    completed = soft_impute(w, ~located, shrinkage, rank, max_iters)
    scores = torch.where(located, completed.abs(), torch.full_like(w, -1.0))
    kept = located & (_rank_in_row(scores) < _kept_count(located, sign_ratio)[:, None])
    sign = torch.where(completed >= 0, 1.0, -1.0)
    large = sign * ((1 + margin) * _row_ceiling(w, located))
    rest_values = completed if rest == "completed" else w
    out = torch.where(kept, large, torch.where(located, rest_values, w))
    return out.to(weight.dtype)


def revive(weights: dict[str, torch.Tensor], located: dict[str, torch.Tensor], **settings) -> dict[str, torch.Tensor]:
    """``revive_weight`` on every layer named in ``located`` (``settings``: its keyword arguments). Returns
    name -> new tensor for each of those names, in their order; a layer with nothing located comes back as an
    unchanged copy (so the result always loads back as a whole). Layers of ``weights`` not in ``located`` are
    left out."""
    revived = {}
    for name, mask in located.items():
        weight = weights[name]
        mask = mask.to(weight.device, torch.bool)
        revived[name] = revive_weight(weight, mask, **settings) if bool(mask.any()) else weight.detach().clone()
    return revived


# ---------------------------------------------------------------- detectors


def _z(w: torch.Tensor, dim: int) -> torch.Tensor:
    """|w - mean| / std along ``dim`` (population std, floored at 1e-12)."""
    mean = w.mean(dim=dim, keepdim=True)
    std = w.std(dim=dim, keepdim=True, unbiased=False).clamp_min(1e-12)
    return (w - mean).abs() / std


def detector_scores(weight: torch.Tensor, kind: str, shrinkage: float | None = None, rank: int | None = None) -> torch.Tensor:
    """float32 scores of ``weight``'s shape, higher = more likely pruned, for an attacker who sees only the weight.

    ``kind`` is one of ``DETECTORS``, optionally prefixed by "-" to negate the score (e.g. "-row_z": an entry
    too close to its row's mean is suspicious):
    - ``zero``: 1 at exact zeros, else 0 (a zero fill);
    - ``magnitude``: -|w| (pruned entries are small: a zero fill, or a fill narrower than the weights);
    - ``row_z``: |w - row mean| / row std (an outlier in its row: a fill of the wrong scale);
    - ``col_z``: the same along the column (a fill blind to the column's statistics);
    - ``residual``: |w - SVT(w)|, SVT soft-thresholding the singular values by ``shrinkage`` (default
      ``DEFAULT_SHRINKAGE``) * the largest one, at most ``rank`` of them (a fill that breaks the weight's
      low-rank structure).
    """
    negate = kind.startswith("-")
    base = kind[1:] if negate else kind
    w = weight.detach().float()
    if base == "zero":
        scores = (w == 0).float()
    elif base == "magnitude":
        scores = -w.abs()
    elif base == "row_z":
        scores = _z(w, dim=1)
    elif base == "col_z":
        scores = _z(w, dim=0)
    elif base == "residual":
        fraction = DEFAULT_SHRINKAGE if shrinkage is None else float(shrinkage)
        scores = (w - _svt(w, fraction, rank)[0]).abs()
    else:
        raise ValueError(f"unknown detector {kind!r}; choose one of {', '.join(DETECTORS)} (optionally with a leading '-')")
    return -scores if negate else scores


# ---------------------------------------------------------------- AUC


def locating_auc(scores: torch.Tensor, truth: torch.Tensor) -> float:
    """ROC AUC of ``scores`` (any shape) for the bool ``truth`` (same shape): the probability that a True entry
    scores above a False one, ties counted half, by the rank-sum (Mann-Whitney) formula in float64 (exact).
    0.5 when either class is empty. Above ``MAX_AUC_ENTRIES`` entries, the AUC of a uniform sub-sample of that
    many entries without replacement, seeded by ``AUC_SEED`` (deterministic, the same on every device)."""
    if scores.shape != truth.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and truth {tuple(truth.shape)} differ in shape")
    s = scores.detach().reshape(-1).double()
    t = truth.reshape(-1).to(s.device, torch.bool)
    if s.numel() > MAX_AUC_ENTRIES:
        gen = torch.Generator().manual_seed(AUC_SEED)
        pick = torch.randperm(s.numel(), generator=gen)[:MAX_AUC_ENTRIES].to(s.device)
        s, t = s[pick], t[pick]
    positives = int(t.sum())
    negatives = t.numel() - positives
    if positives == 0 or negatives == 0:
        return 0.5
    sorted_scores, order = s.sort()
    _, counts = torch.unique_consecutive(sorted_scores, return_counts=True)
    ends = counts.cumsum(0).double()
    mean_rank = ends - (counts.double() - 1) / 2  # 1-based average rank of each tie group
    ranks = torch.repeat_interleave(mean_rank, counts)
    rank_sum = float(ranks[t[order]].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def locating_aucs(
    weights: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    kinds=DETECTORS,
    **detector_settings,
) -> dict[str, float]:
    """How well each detector finds the pruned weights: for each kind of ``kinds`` (see ``detector_scores``;
    ``detector_settings`` go to it), over the layers named in ``masks`` (True = pruned):

    - ``kind``: the pooled AUC, scores and truth of all layers concatenated (a single threshold for the whole
      model; scores of "magnitude" and "residual" are not comparable across layers, so this understates them);
    - ``kind + "_per_layer"``: the unweighted mean of the per-layer AUCs over the layers whose mask has both
      pruned and kept entries (0.5 if none). The headline: the attack works layer by layer, so an attacker
      ranks and thresholds each layer on its own (see ``best_detector``).
    """
    result = {}
    for kind in kinds:
        pooled_scores, pooled_truth, per_layer = [], [], []
        for name, mask in masks.items():
            weight = weights[name]
            scores = detector_scores(weight, kind, **detector_settings)
            truth = mask.to(scores.device, torch.bool)
            pooled_scores.append(scores.reshape(-1))
            pooled_truth.append(truth.reshape(-1))
            if 0 < int(truth.sum()) < truth.numel():
                per_layer.append(locating_auc(scores, truth))
        device = pooled_scores[0].device if pooled_scores else None
        if pooled_scores:
            result[kind] = locating_auc(
                torch.cat([s.to(device) for s in pooled_scores]), torch.cat([t.to(device) for t in pooled_truth])
            )
        else:
            result[kind] = 0.5
        result[f"{kind}_per_layer"] = sum(per_layer) / len(per_layer) if per_layer else 0.5
    return result


def best_detector(aucs: dict[str, float], per_layer: bool = True, signed: bool = True) -> tuple[str, float]:
    """(kind, AUC) of the best detector in ``aucs`` (as from ``locating_aucs``): among the per-layer means when
    ``per_layer`` (names without the "_per_layer" suffix), else among the pooled AUCs. With ``signed`` a
    detector also counts negated, "-kind" with AUC 1 - AUC (negating scores flips the AUC exactly). An oracle
    choice, made knowing the truth: an upper bound on the simple detectors an attacker could pick."""
    suffix = "_per_layer"
    candidates = {}
    for key, auc in aucs.items():
        if key.endswith(suffix) != per_layer:
            continue
        kind = key[: -len(suffix)] if per_layer else key
        candidates[kind] = auc
        if signed:
            candidates[kind[1:] if kind.startswith("-") else f"-{kind}"] = 1 - auc
    if not candidates:
        raise ValueError("no AUC of the requested kind in aucs")
    kind = max(candidates, key=lambda k: (candidates[k], -len(k)))
    return kind, candidates[kind]
