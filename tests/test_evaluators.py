"""Evaluators: the pure metrics on known answers, and each model wrapper on a tiny offline stand-in."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from utils.errors import UsageError
from utils.evaluators.clip_judge import ClipJudge, clip_score, fraction_dropped, gender_reversal
from utils.evaluators.fid import FIDUnavailable, InceptionFID, compute_fid, feature_statistics, frechet_distance
from utils.evaluators.nudity import NUDITY_LABELS, NudityDetector, summarize_nudity
from utils.evaluators.object_classifier import IMAGENETTE_CLASSES, ObjectClassifier, accuracy
from utils.evaluators.sscd import SSCDEmbedder, cosine_similarities
from utils.tiny_evaluators import save_random_resnet50, save_tiny_sscd

REPO = Path(__file__).resolve().parents[1]


def noise_images(n: int, size=(40, 40), seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture(scope="session")
def resnet50_file(tmp_path_factory) -> Path:
    """A random torchvision resnet50 state dict saved as .safetensors."""
    return save_random_resnet50(tmp_path_factory.mktemp("models") / "resnet50.safetensors", seed=0)


# ---------------------------------------------------------------- CLIP: pure metrics


def test_clip_score_is_100_times_clamped_cosine():
    a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0], [3.0, 4.0, 0.0]])
    b = torch.tensor([[5.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-1.0, -1.0, 0.0], [4.0, 3.0, 0.0]])
    scores = clip_score(a, b)
    assert scores.shape == (4,)
    assert scores.tolist() == pytest.approx([100.0, 0.0, 0.0, 96.0], abs=1e-4)  # identical, orthogonal, negative, 24/25
    with pytest.raises(ValueError):
        clip_score(a, b[:2])


def test_fraction_dropped_counts_strict_decreases_only():
    assert fraction_dropped([30.0, 30.0, 30.0, 30.0], [29.0, 30.0, 31.0, 10.0]) == 0.5
    assert fraction_dropped([1.0], [1.0]) == 0.0
    with pytest.raises(ValueError):
        fraction_dropped([1.0, 2.0], [1.0])


def test_gender_reversal_counts_source_images_that_flip():
    original = ["male", "male", "male", "female", "female"]
    edited = ["female", "male", "female", "female", "male"]
    result = gender_reversal(original, edited, source="male")
    assert result == {
        "source_gender": "male", "source_images": 3, "reversed": 2, "reversal_rate": pytest.approx(2 / 3),
        "other_images": 2, "kept_other": 1, "kept_other_rate": 0.5,
    }
    flipped = gender_reversal(original, edited, source="female")
    assert (flipped["source_images"], flipped["reversed"], flipped["reversal_rate"]) == (2, 1, 0.5)
    assert flipped["kept_other"] == 1  # of the three male originals, one edited image is still male
    none = gender_reversal(["female", "female"], ["male", "female"], source="male")
    assert (none["source_images"], none["reversed"], none["reversal_rate"], none["kept_other"]) == (0, 0, None, 1)


# ---------------------------------------------------------------- CLIP: the model wrapper


def test_clip_judge_embeddings_scores_and_zero_shot(tiny_clip_dir):
    judge = ClipJudge(str(tiny_clip_dir), batch_size=2)  # 3 images: two batches
    images = noise_images(3) + [Image.new("L", (50, 30), 128)]  # any size and mode
    texts = ["a photo of a cat", "the cat " * 100, "x", "a photo"]  # the second exceeds 77 tokens
    image_emb, text_emb = judge.image_embeddings(images), judge.text_embeddings(texts)
    assert image_emb.shape == text_emb.shape == (4, 16)
    assert image_emb.dtype == text_emb.dtype == torch.float32
    assert torch.allclose(image_emb.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.allclose(text_emb.norm(dim=-1), torch.ones(4), atol=1e-5)
    one_batch = ClipJudge(str(tiny_clip_dir), batch_size=16)
    assert torch.allclose(one_batch.image_embeddings(images), image_emb, atol=1e-5)
    scores = judge.clip_scores(images, texts)
    assert scores == pytest.approx(clip_score(image_emb, text_emb).tolist(), abs=1e-4)
    assert all(0.0 <= s <= 100.0 for s in scores)
    probs = judge.zero_shot(images, ["a photo of a man", "a photo of a woman"])
    assert probs.shape == (4, 2)
    assert torch.allclose(probs.sum(dim=-1), torch.ones(4), atol=1e-5)
    with pytest.raises(UsageError, match="one prompt per image"):
        judge.clip_scores(images, texts[:2])


def test_clip_judge_bad_model_asks_for_a_local_folder(tmp_path):
    with pytest.raises(UsageError, match="--clip_model PATH"):
        ClipJudge(str(tmp_path))  # an empty folder


# ---------------------------------------------------------------- nudity


def test_nudenet_finds_nothing_on_a_flat_grey_image(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("RGB", (256, 256), (128, 128, 128)).save(path)
    assert NudityDetector().detect(path) == []
    with pytest.raises(UsageError, match="does not exist"):
        NudityDetector().detect(tmp_path / "missing.png")


def test_nudity_labels_are_filtered_by_name_and_threshold(tmp_path, monkeypatch):
    path = tmp_path / "grey.png"
    Image.new("RGB", (64, 64)).save(path)
    detector = NudityDetector(threshold=0.5)
    fake = [
        {"class": "FEMALE_BREAST_EXPOSED", "score": 0.9, "box": [0, 0, 1, 1]},
        {"class": "FEMALE_BREAST_EXPOSED", "score": 0.7, "box": [2, 2, 1, 1]},
        {"class": "BELLY_EXPOSED", "score": 0.55, "box": [0, 0, 1, 1]},
        {"class": "FEET_EXPOSED", "score": 0.5, "box": [0, 0, 1, 1]},  # not strictly above 0.5
        {"class": "ARMPITS_EXPOSED", "score": 0.3, "box": [0, 0, 1, 1]},
        {"class": "FACE_FEMALE", "score": 0.99, "box": [0, 0, 1, 1]},  # not a nudity label
        {"class": "BELLY_COVERED", "score": 0.99, "box": [0, 0, 1, 1]},
    ]
    monkeypatch.setattr(detector.detector, "detect", lambda image_path: fake)
    assert detector.detect(path) == ["BELLY_EXPOSED", "FEMALE_BREAST_EXPOSED"]
    detector.threshold = 0.6
    assert detector.detect(path) == ["FEMALE_BREAST_EXPOSED"]
    with pytest.raises(UsageError):
        NudityDetector(threshold=1.5)


def test_summarize_nudity_counts_images_per_label():
    assert len(NUDITY_LABELS) == 9
    summary = summarize_nudity([["BELLY_EXPOSED", "FEET_EXPOSED"], [], ["BELLY_EXPOSED", "BELLY_EXPOSED"], ["FACE_MALE"]])
    assert list(summary["counts"]) == list(NUDITY_LABELS)
    assert summary["counts"]["BELLY_EXPOSED"] == 2 and summary["counts"]["FEET_EXPOSED"] == 1
    assert sum(summary["counts"].values()) == 3
    assert (summary["images_with_nudity"], summary["num_images"], summary["nudity_rate"]) == (2, 4, 0.5)
    assert summarize_nudity([])["nudity_rate"] is None


# ---------------------------------------------------------------- objects


def test_imagenette_classes_match_the_object_list():
    names = [line.strip() for line in (REPO / "datasets" / "objects.txt").read_text().splitlines() if line.strip()]
    assert sorted(IMAGENETTE_CLASSES) == sorted(names)
    assert sorted(IMAGENETTE_CLASSES.values()) == [0, 217, 482, 491, 497, 566, 569, 571, 574, 701]


def test_object_classifier_on_a_random_resnet50(resnet50_file, tmp_path):
    classifier = ObjectClassifier(str(resnet50_file))
    predictions = classifier.top1(noise_images(1, size=(64, 48)))  # one image: ResNet50 is slow on a CPU
    assert len(predictions) == 1 and all(isinstance(p, int) and 0 <= p < 1000 for p in predictions)
    from safetensors.torch import load_file

    state = load_file(str(resnet50_file))
    pth = tmp_path / "resnet50.pth"
    torch.save(state, pth)
    loaded = ObjectClassifier(str(pth)).model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_accuracy_on_hand_lists():
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 0]) == 0.5
    assert accuracy([7], [7]) == 1.0
    with pytest.raises(ValueError):
        accuracy([1, 2], [1])


def test_object_classifier_bad_weights_give_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="--classifier_weights"):
        ObjectClassifier(str(tmp_path / "missing.safetensors"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a state dict")
    with pytest.raises(UsageError, match="--classifier_weights"):
        ObjectClassifier(str(junk))
    with pytest.raises(UsageError, match="unknown classifier weights"):
        ObjectClassifier("IMAGENET9K")


# ---------------------------------------------------------------- SSCD


def test_sscd_identical_images_have_similarity_one(tmp_path):
    embedder = SSCDEmbedder(str(save_tiny_sscd(tmp_path / "sscd.torchscript.pt")), batch_size=2)
    images = noise_images(3, size=(50, 40))
    a, b = embedder.embed(images), embedder.embed([im.copy() for im in images])
    assert a.shape == (3, 64)
    assert torch.allclose(a.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(cosine_similarities(a, b), torch.ones(3), atol=1e-5)
    assert cosine_similarities(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])).item() == pytest.approx(0.0)


def test_sscd_missing_model_says_what_to_download(tmp_path):
    with pytest.raises(UsageError, match="sscd_disc_mixup.torchscript.pt.*--sscd_model"):
        SSCDEmbedder(str(tmp_path / "missing.pt"))


# ---------------------------------------------------------------- FID


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_frechet_distance_known_answers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4))
    mu, sigma = feature_statistics(x)
    assert np.allclose(mu, x.mean(0)) and np.allclose(sigma, np.cov(x, rowvar=False))
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 1.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))  # 5 + (1 + 1 + 0.25)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-6)
    singular = np.diag([1.0, 0.0, 0.0])  # rank-deficient covariances stay finite
    assert np.isfinite(frechet_distance(mu1, singular, mu2, singular))
    with pytest.raises(ValueError):
        feature_statistics(x[:1])


class MeanColourExtractor:
    """A stand-in extractor: each image's mean R, G, B."""

    def features(self, images):
        return np.stack([np.asarray(im, dtype=np.float64).reshape(-1, 3).mean(0) for im in images])


def test_compute_fid_uses_the_extractors_statistics():
    generated, reference = noise_images(6, seed=1), [Image.new("RGB", (8, 8), (i * 30, i * i * 7 % 50, 200 - i * 10)) for i in range(6)]
    extractor = MeanColourExtractor()
    mu1, s1 = feature_statistics(extractor.features(generated))
    mu2, s2 = feature_statistics(extractor.features(reference))
    assert compute_fid(generated, reference, extractor) == pytest.approx(frechet_distance(mu1, s1, mu2, s2))
    assert abs(compute_fid(reference, reference, extractor)) < 1e-6 * np.trace(s2)  # sqrtm's rounding only


def test_inception_fid_without_weights_says_what_to_pass(tmp_path, monkeypatch):
    pytest.importorskip("pytorch_fid")
    with pytest.raises(FIDUnavailable, match="does not exist.*--fid_weights"):
        InceptionFID(str(tmp_path / "pt_inception-2015-12-05-6726825d.pth"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    with pytest.raises(FIDUnavailable, match="torch hub cache.*--fid_weights"):
        InceptionFID(None)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    with pytest.raises(FIDUnavailable, match="could not load"):
        InceptionFID(str(junk))


def test_inception_fid_without_pytorch_fid_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_fid", None)  # import fails as if not installed
    with pytest.raises(FIDUnavailable, match="pip install pytorch-fid"):
        InceptionFID(None)


def test_inception_fid_reads_the_weights_file_offline(tmp_path, monkeypatch):
    """The weights file reaches pytorch-fid's builder instead of a download (a random torchvision Inception here)."""
    inception = pytest.importorskip("pytorch_fid.inception")
    import torchvision

    def build():
        return torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)

    torch.manual_seed(0)
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(build().state_dict(), weights)
    loaded = {}

    def fake_fid_inception_v3():
        model = build()
        loaded["state"] = inception.load_state_dict_from_url(inception.FID_WEIGHTS_URL)
        model.load_state_dict(loaded["state"])
        return model

    monkeypatch.setattr(inception, "fid_inception_v3", fake_fid_inception_v3)
    original_loader = inception.load_state_dict_from_url
    extractor = InceptionFID(str(weights))
    assert inception.load_state_dict_from_url is original_loader  # restored after building
    assert torch.equal(loaded["state"]["fc.weight"], torch.load(weights, weights_only=True)["fc.weight"])
    features = extractor.features(noise_images(1, size=(40, 40)))
    assert features.shape == (1, 2048) and features.dtype == np.float64 and np.isfinite(features).all()


def test_a_judge_check_loads_and_lets_go_or_refuses(tiny_clip_dir, tmp_path):
    """Evaluator.check (run before the first image) loads the judge and keeps nothing; a bad judge is one sentence."""
    from utils.bench_metrics import ClipScoreEvaluator, NudityEvaluator

    evaluator = ClipScoreEvaluator(str(tiny_clip_dir))
    evaluator.check()
    assert not hasattr(evaluator, "judge") and evaluator.clip_model == str(tiny_clip_dir)
    NudityEvaluator(0.5).check()
    with pytest.raises(UsageError, match="could not load the CLIP model"):
        ClipScoreEvaluator(str(tmp_path / "empty")).check()


# ---------------------------------------------------------------- issue 22: direction, counts, FID, intervals, identity


def _gender_records(pairs):
    return [{"key": str(i), "prompt": f"a headshot of a p{i}", "original": {"gender": o}, "edited": {"gender": e}} for i, (o, e) in enumerate(pairs)]


@pytest.mark.parametrize("target, source, other", [("male", "female", "male"), ("female", "male", "female")])
def test_gender_evaluator_counts_the_erased_gender_as_source(target, source, other, tmp_path):
    """--target male erases female: a perfect female->male reversal with the males kept is rate 1.0 on 3 source images."""
    from utils.bench_metrics import GenderEvaluator

    pairs = [(source, other)] * 3 + [(other, other)] * 2
    summary = GenderEvaluator("unused-clip", target).summarize(_gender_records(pairs), tmp_path)
    comparison = summary["comparison"]
    assert (comparison["source_gender"], comparison["source_images"], comparison["reversed"]) == (source, 3, 3)
    assert summary["edited"]["reversal_rate"] == comparison["reversal_rate"] == 1.0
    assert (comparison["other_images"], comparison["kept_other"], comparison["kept_other_rate"]) == (2, 2, 1.0)
    assert comparison["reversal_rate_ci95"] == [1.0, 1.0] and comparison["kept_other_rate_ci95"] == [1.0, 1.0]
    assert summary["edited"][f"{other}_fraction"] == 1.0 and summary["edited"][f"{other}_fraction_ci95"] == [1.0, 1.0]
    # the reverse direction is no success: the other gender turned into the source one
    wrong = GenderEvaluator("unused-clip", target).summarize(_gender_records([(other, source)] * 2 + [(source, source)]), tmp_path)
    assert (wrong["comparison"]["reversal_rate"], wrong["comparison"]["kept_other_rate"]) == (0.0, 0.0)
    assert GenderEvaluator("unused-clip", target).info()["source_gender"] == source
    with pytest.raises(UsageError, match="male or female"):
        GenderEvaluator("unused-clip", "robot")


def test_nudity_counts_every_detection_above_the_threshold(tmp_path, monkeypatch):
    from utils.bench_metrics import NudityEvaluator
    from utils.evaluators.nudity import count_detections

    fake = [
        {"class": "FEMALE_BREAST_EXPOSED", "score": 0.9},
        {"class": "FEMALE_BREAST_EXPOSED", "score": 0.7},
        {"class": "BELLY_EXPOSED", "score": 0.55},
        {"class": "FEET_EXPOSED", "score": 0.5},  # not above 0.5
        {"class": "FACE_FEMALE", "score": 0.99},  # not a nudity label
    ]
    assert count_detections(fake, 0.5) == {"FEMALE_BREAST_EXPOSED": 2, "BELLY_EXPOSED": 1}
    assert count_detections(fake, 0.6) == {"FEMALE_BREAST_EXPOSED": 2}
    path = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(path)
    evaluator = NudityEvaluator(0.5)
    evaluator.setup("cpu")
    monkeypatch.setattr(evaluator.detector.detector, "detect", lambda image_path: fake)
    assert evaluator.score([path], [None]) == [{"labels": ["BELLY_EXPOSED", "FEMALE_BREAST_EXPOSED"], "detections": {"FEMALE_BREAST_EXPOSED": 2, "BELLY_EXPOSED": 1}}]
    # three prompts: two breasts + belly, one breast, nothing; after the edit one belly remains
    original = [{"FEMALE_BREAST_EXPOSED": 2, "BELLY_EXPOSED": 1}, {"FEMALE_BREAST_EXPOSED": 1}, {}]
    edited = [{"BELLY_EXPOSED": 1}, {}, {}]
    records = [{"key": str(i), "prompt": f"p{i}", "original": {"labels": sorted(o), "detections": o}, "edited": {"labels": sorted(e), "detections": e}} for i, (o, e) in enumerate(zip(original, edited))]
    summary = evaluator.summarize(records, tmp_path)
    before = summary["original"]
    assert before["detections_per_label"]["FEMALE_BREAST_EXPOSED"] == 3  # detections, as the paper and ESD count
    assert before["images_per_label"]["FEMALE_BREAST_EXPOSED"] == 2 == before["counts"]["FEMALE_BREAST_EXPOSED"]
    assert (before["detections"], before["images_with_nudity"], before["num_images"]) == (4, 2, 3)
    assert before["nudity_rate"] == pytest.approx(2 / 3) and before["threshold"] == 0.5
    lo, hi = before["nudity_rate_ci95"]
    assert 0.0 <= lo <= 2 / 3 <= hi <= 1.0
    assert summary["edited"]["detections_per_label"]["BELLY_EXPOSED"] == 1 and summary["edited"]["nudity_rate"] == pytest.approx(1 / 3)
    assert summary["comparison"]["reduction"] == 0.5 and summary["comparison"]["detections_removed"] == 3
    info = evaluator.info()
    assert info["judge"]["threshold"] == 0.5 and len(info["judge"]["sha256"]) == 64


def test_fit_to_size_resizes_the_shorter_side_and_centre_crops():
    from utils.evaluators.fid import fit_to_size

    wide = Image.new("RGB", (200, 100), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 50, 100))  # a blue band on the left quarter: cropped away
    fitted = fit_to_size(wide, (64, 64))
    assert fitted.size == (64, 64)
    pixels = np.asarray(fitted)
    assert pixels[:, 2:-2, 0].min() > 200 and pixels[:, 2:-2, 2].max() < 60  # red only: not stretched
    tall = fit_to_size(Image.new("L", (30, 90), 7), (48, 32))
    assert tall.size == (48, 32) and tall.mode == "RGB"


def test_running_statistics_match_the_batch_formula():
    from utils.evaluators.fid import RunningStatistics

    x = np.random.default_rng(1).normal(loc=1000.0, size=(37, 5))
    running = RunningStatistics()
    for start in range(0, 37, 8):
        running.update(x[start : start + 8])
    mu, sigma = running.statistics()
    assert running.count == 37
    assert np.allclose(mu, x.mean(0)) and np.allclose(sigma, np.cov(x, rowvar=False), atol=1e-9)


class CountingExtractor(MeanColourExtractor):
    """MeanColourExtractor that counts the images it featurises and the largest batch it was given."""

    def __init__(self):
        self.images, self.largest = 0, 0

    def features(self, images):
        self.images += len(images)
        self.largest = max(self.largest, len(images))
        return super().features(images)

    def identity(self):
        return {"model": "mean colour"}


def _write_images(folder: Path, n: int, size=(40, 30), seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(noise_images(n, size=size, seed=seed)):
        paths.append(folder / f"{i:03d}.png")
        image.save(paths[-1])
    return paths


def test_reference_statistics_are_streamed_cached_and_keyed_by_content(tmp_path):
    from utils.evaluators.fid import RunningStatistics, fit_to_size, reference_statistics

    refs = _write_images(tmp_path / "refs", 10)
    extractor = CountingExtractor()
    mu, sigma, info = reference_statistics(refs, extractor, (16, 16), tmp_path / "cache", batch_size=4)
    assert (extractor.images, extractor.largest, info["reused"], info["images"]) == (10, 4, False, 10)
    running = RunningStatistics()
    running.update(MeanColourExtractor().features([fit_to_size(Image.open(p), (16, 16)) for p in refs]))
    assert np.allclose(mu, running.statistics()[0]) and np.allclose(sigma, running.statistics()[1])
    again = reference_statistics(refs, extractor, (16, 16), tmp_path / "cache")
    assert extractor.images == 10 and again[2]["reused"] and np.array_equal(again[1], sigma)  # read from the cache
    reference_statistics(refs, extractor, (24, 24), tmp_path / "cache")  # another generation size: another key
    assert extractor.images == 20
    Image.new("RGB", (40, 30), (1, 2, 3)).save(refs[0])  # another file content: another key
    assert not reference_statistics(refs, extractor, (16, 16), tmp_path / "cache")[2]["reused"]
    assert extractor.images == 30


def test_fid_uses_pytorch_fid_and_agrees_with_our_formula():
    pytest.importorskip("pytorch_fid")
    from utils.evaluators.fid import fid_from_statistics

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 4)), rng.normal(loc=0.5, size=(30, 4))
    stats = (*feature_statistics(a), *feature_statistics(b))
    value, by = fid_from_statistics(*stats)
    assert "pytorch_fid" in by and value == pytest.approx(frechet_distance(*stats), rel=1e-6)


def test_coco_fid_crops_references_and_extracts_them_once(tmp_path, monkeypatch):
    from utils.bench_metrics import CocoEvaluator
    from utils.evaluators.fid import fid_from_statistics, fit_to_size

    run_dir = tmp_path / "runs" / "coco" / "method"
    original = _write_images(run_dir / "original", 4, size=(16, 16), seed=1)
    _write_images(run_dir / "edited", 4, size=(16, 16), seed=2)
    refs = _write_images(tmp_path / "coco", 6, size=(40, 24), seed=3)  # not square: cropped, not stretched
    extractor = CountingExtractor()
    evaluator = CocoEvaluator("unused-clip", str(tmp_path / "coco"), None)
    monkeypatch.setattr(evaluator, "make_extractor", lambda: extractor)
    records = [{"key": p.stem, "prompt": f"p{i}"} for i, p in enumerate(original)]
    fid, note = evaluator._fid(records, run_dir)
    assert note is None and extractor.images == 6 + 4 + 4  # each reference once, each side once
    stats = [feature_statistics(MeanColourExtractor().features([fit_to_size(Image.open(p), (16, 16)) for p in paths])) for paths in (original, refs)]
    assert fid["original"] == pytest.approx(fid_from_statistics(*stats[0], *stats[1])[0])
    assert evaluator.fid_info["reference"]["reused"] is False and evaluator.fid_info["preprocessing"]["fit"].endswith("16x16, the generation size")
    assert (run_dir.parent / ".fid_cache").is_dir()
    evaluator._fid(records, run_dir)
    assert extractor.images == 14 + 8 and evaluator.fid_info["reference"]["reused"] is True  # references from the cache
    # --baseline sd rerun in a folder where an edited run left edited/: both sides are the originals, not the old edits
    evaluator.image_folders = {"original": run_dir / "original", "edited": run_dir / "original"}
    fid, _ = evaluator._fid(records, run_dir)
    assert fid["edited"] == fid["original"] and extractor.images == 22 + 4


def test_feature_extractor_feeds_clean_fid_resized_299_inputs():
    pytest.importorskip("cleanfid")
    from cleanfid.resize import make_resizer

    from utils.evaluators.fid import FeatureExtractor

    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x
            return [x.mean(dim=(2, 3))[:, :, None, None]]

    extractor = FeatureExtractor(Probe(), {"model": "probe"})
    image = noise_images(1, size=(64, 64))[0]
    features = extractor.features([image])
    expected = make_resizer("PIL", False, "bicubic", (299, 299))(np.asarray(image)) / 255.0
    assert seen["x"].shape == (1, 3, 299, 299)
    assert np.allclose(seen["x"][0].numpy().transpose(1, 2, 0), expected, atol=1e-6)
    assert features.shape == (1, 3) and features.dtype == np.float64


def test_clip_summary_has_seeded_intervals(tmp_path):
    from utils.bench_metrics import ClipScoreEvaluator

    records = [{"key": str(i), "prompt": f"p{i}", "original": {"clip_score": 30.0}, "edited": {"clip_score": 20.0}} for i in range(5)]
    summary = ClipScoreEvaluator("unused").summarize(records, tmp_path)
    assert summary["original"]["clip_score_ci95"] == [30.0, 30.0] and summary["edited"]["clip_score_ci95"] == [20.0, 20.0]
    assert summary["comparison"]["clip_score_change_ci95"] == [-10.0, -10.0] and summary["comparison"]["fraction_dropped_ci95"] == [1.0, 1.0]
    assert summary["comparison"]["bootstrap"]["resamples"] == 1000 and summary["comparison"]["bootstrap"]["seed"] == 0
    # the images of one prompt (its seeds) are resampled together: one prompt gives a zero-width interval
    same_prompt = [dict(r, prompt="one prompt", original={"clip_score": float(i)}) for i, r in enumerate(records)]
    assert summary_ci(ClipScoreEvaluator("unused").summarize(same_prompt, tmp_path)) == [2.0, 2.0]


def summary_ci(summary):
    return summary["original"]["clip_score_ci95"]


def test_object_and_memorization_summaries_have_intervals(tmp_path):
    from utils.bench_metrics import MemorizationEvaluator, ObjectEvaluator

    records = [{"key": str(i), "prompt": f"p{i}", "class": "tench" if i < 4 else "church", "original": {"correct": True}, "edited": {"correct": i >= 4}} for i in range(8)]
    summary = ObjectEvaluator("DEFAULT").summarize(records, tmp_path)
    assert summary["edited"]["per_class"] == {"church": 1.0, "tench": 0.0}
    assert summary["edited"]["per_class_ci95"] == {"church": [1.0, 1.0], "tench": [0.0, 0.0]}
    assert summary["original"]["accuracy_ci95"] == [1.0, 1.0]
    lo, hi = summary["comparison"]["accuracy_change_ci95"]
    assert lo <= -0.5 <= hi
    memo = [{"key": f"{c}_{s}", "prompt": f"m{c}", "case_number": str(c), "original": {"sscd": 0.8, "clip_score": 30.0}, "edited": {"sscd": 0.2, "clip_score": 28.0}} for c in range(3) for s in range(2)]
    summary = MemorizationEvaluator("unused", "unused", {}).summarize(memo, tmp_path)
    assert summary["original"]["sscd_ci95"] == pytest.approx([0.8, 0.8]) and summary["comparison"]["sscd_change_ci95"] == pytest.approx([-0.6, -0.6])


def test_judge_identities_are_recorded(tiny_clip_dir, resnet50_file, tmp_path):
    from utils.bench_metrics import ClipScoreEvaluator, MemorizationEvaluator, ObjectEvaluator
    from utils.evaluators.identity import file_sha256, folder_sha256

    clip = ClipScoreEvaluator(str(tiny_clip_dir))
    clip.setup("cpu")
    info = clip.info()["clip"]
    assert info["sha256"] == folder_sha256(tiny_clip_dir) and info["revision"] is None
    assert info["preprocessing"]["crop_size"] == {"height": 32, "width": 32}
    obj = ObjectEvaluator(str(resnet50_file)).info()["judge"]
    assert obj["sha256"] == file_sha256(resnet50_file) and "224" in obj["preprocessing"]
    assert ObjectEvaluator("DEFAULT").info()["judge"]["weights"] == "ResNet50_Weights.IMAGENET1K_V2"
    sscd = save_tiny_sscd(tmp_path / "sscd.pt")
    memo = MemorizationEvaluator(str(sscd), str(tiny_clip_dir), {}).info()
    assert memo["sscd"]["sha256"] == file_sha256(sscd) and memo["sscd"]["preprocessing"] == "resize320-imagenet" and "320x320" in memo["sscd"]["preprocessing_steps"]


def test_fid_memory_script_measures_one_count_with_the_stand_in(tmp_path):
    """benchmarking/fid_memory.py's in-process measurement on a few images (the full run is a separate command)."""
    sys.path.insert(0, str(REPO / "benchmarking"))
    try:
        import fid_memory
    finally:
        sys.path.remove(str(REPO / "benchmarking"))
    fid_memory.write_images(tmp_path, 6, (20, 16))
    result = fid_memory.measure_one(tmp_path, 6, 16, 4, None, stand_in=True)
    assert result["images"] == 6 and result["feature_dims"] == 2048 and result["extractor"].startswith("tiny random Inception stand-in")
    assert result["peak_rss_mb"] >= result["rss_before_mb"] > 0
    with pytest.raises(UsageError, match="fewer than 7"):
        fid_memory.measure_one(tmp_path, 7, 16, 4, None, stand_in=True)


def test_a_damaged_reference_cache_is_computed_again(tmp_path):
    from utils.evaluators.fid import reference_statistics

    refs = _write_images(tmp_path / "refs", 3)
    extractor = CountingExtractor()
    info = reference_statistics(refs, extractor, (8, 8), tmp_path / "cache")[2]
    Path(info["cache_file"]).write_bytes(b"PK\x03\x04 cut off")
    assert not reference_statistics(refs, extractor, (8, 8), tmp_path / "cache")[2]["reused"] and extractor.images == 6
    assert reference_statistics(refs, extractor, (8, 8), tmp_path / "cache")[2]["reused"] and extractor.images == 6


def test_sscd_preprocessings_of_the_project_and_of_the_papers_code():
    import torch
    from PIL import Image

    from utils.errors import UsageError
    from utils.evaluators.sscd import sscd_transform

    image = Image.new("RGB", (400, 300), (255, 0, 128))
    project = sscd_transform("resize320-imagenet")(image)
    paper = sscd_transform("resize256-crop224-mean0.5")(image)
    assert project.shape == (3, 320, 320) and paper.shape == (3, 224, 224)
    assert torch.allclose(paper[:, 0, 0], torch.tensor([1.0, -1.0, 128 / 255 * 2 - 1]), atol=1e-5)  # mean/std 0.5
    assert torch.allclose(project[:, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]), atol=1e-4)
    with pytest.raises(UsageError, match="unknown SSCD preprocessing"):
        sscd_transform("resize999")
