"""The concept world of the embedded demo: seeded 32x32 images of shapes and their captions.

An image shows one object: a shape (8 kinds) of a colour (8), small or large (the reversible pair,
the analogue of gender reversal), filled with a texture (12 "styles"), on a white or black
background. Its caption names every attribute:
"a large red circle on a white background in the style of stripes". Everything is a pure
function of the attributes and a seed (position jitter and texture phase), so the world is
reproducible and any dataset of it can be rebuilt from its seed.

The textures repeat every 4 to 12 pixels. This is the third world (demo/README.md, "The world"): in the
first, dots, checker, waves, zigzag, rings and speckles were finer (periods of 2 to 6 pixels, per-pixel
speckles) and the 2.3 M-parameter demo UNet drew waves, zigzag and checker as stripes; the second made them
coarser, and the third made checker (6-pixel squares), rings (period 8) and crosshatch (2-pixel lines,
period 8) coarser still, after the second world's model drew them as speckles and stripes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 32
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star", "ring", "hexagon")
COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40),
    "purple": (140, 60, 190), "orange": (245, 140, 30), "cyan": (40, 200, 210), "pink": (240, 120, 180),
}
BACKGROUNDS = {"white": (250, 250, 250), "black": (12, 12, 12)}
SIZES = ("small", "large")
STYLES = ("plain", "stripes", "dots", "checker", "grid", "waves", "zigzag", "rings", "speckles", "gradient", "crosshatch", "bricks")
ATTRIBUTES = {"shape": SHAPES, "colour": tuple(COLOURS), "background": tuple(BACKGROUNDS), "size": SIZES, "style": STYLES}
RADIUS = {"small": 8.0, "large": 12.5}
NEUTRAL = {"style": "plain"}  # the value a concept's base scenes take instead of it (others: a random other value)


@dataclass(frozen=True)
class Scene:
    """One image's attributes."""

    shape: str
    colour: str
    background: str
    size: str
    style: str

    def caption(self) -> str:
        """The caption that names every attribute."""
        return f"a {self.size} {self.colour} {self.shape} on a {self.background} background in the style of {self.style}"

    def labels(self) -> dict[str, int]:
        """Attribute -> class index (for the judge)."""
        return {name: values.index(getattr(self, name)) for name, values in ATTRIBUTES.items()}


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of ``shape`` of radius ``r`` centred at dx = dy = 0."""
    ax, ay = np.abs(dx), np.abs(dy)
    dist = np.hypot(dx, dy)
    if shape == "circle":
        return dist <= r
    if shape == "square":
        return np.maximum(ax, ay) <= r * 0.85
    if shape == "triangle":
        return (dy <= r * 0.75) & (dy >= -r * 0.9 + 1.8 * ax)
    if shape == "diamond":
        return ax + ay <= r
    if shape == "cross":
        arm = r * 0.38
        return ((ax <= arm) & (ay <= r)) | ((ay <= arm) & (ax <= r))
    if shape == "star":
        angle = np.arctan2(dy, dx)
        return dist <= r * (0.55 + 0.45 * np.cos(5 * angle) ** 2)
    if shape == "ring":
        return (dist <= r) & (dist >= r * 0.45)
    if shape == "hexagon":
        return (ay <= r * 0.87) & (ax * 0.87 + ay * 0.5 <= r * 0.87)
    raise ValueError(f"unknown shape {shape}")


def _texture(style: str, x: np.ndarray, y: np.ndarray, dx: np.ndarray, dy: np.ndarray, r: float, rng: np.random.Generator) -> np.ndarray:
    """Texture intensity in [0, 1] at every pixel (1 = full colour, 0 = dark)."""
    phase = rng.uniform(0, 4)
    if style == "plain":
        return np.ones_like(x)
    if style == "stripes":  # diagonal stripes, period 4
        return (((x + y + phase) // 2) % 2).astype(np.float32)
    if style == "dots":  # dark dots of radius 1.5 on a 6-pixel lattice
        return 1.0 - ((((x + phase) % 6) - 2.5) ** 2 + (((y + phase) % 6) - 2.5) ** 2 <= 2.3).astype(np.float32)
    if style == "checker":  # 6-pixel squares
        return ((((x + phase) // 6) + (y // 6)) % 2).astype(np.float32)
    if style == "grid":
        return 1.0 - ((((x + phase) % 5) < 1) | ((y % 5) < 1)).astype(np.float32)
    if style == "waves":  # horizontal wavy bands, period 8, wavelength 12
        return (np.sin((y + 2.0 * np.sin(x * np.pi / 6 + phase)) * np.pi / 4) > 0).astype(np.float32)
    if style == "zigzag":  # vertical zigzag bands, period 8
        return ((((x + 0.75 * np.abs(((y + phase) % 8) - 4)) // 4) % 2)).astype(np.float32)
    if style == "rings":  # concentric, period 8
        return ((np.hypot(dx, dy) // 4) % 2).astype(np.float32)
    if style == "speckles":  # random 2x2 blocks
        blocks = rng.random((x.shape[0] // 2 + 1, x.shape[1] // 2 + 1)) > 0.45
        return blocks.repeat(2, 0).repeat(2, 1)[: x.shape[0], : x.shape[1]].astype(np.float32)
    if style == "gradient":
        return np.clip(0.5 + dx / (2 * r), 0.0, 1.0).astype(np.float32)
    if style == "crosshatch":  # dark diagonal lines 2 pixels wide both ways, period 8
        return 1.0 - ((((x + y + phase) % 8) < 2) | (((x - y + 64 + phase) % 8) < 2)).astype(np.float32)
    if style == "bricks":
        row = y // 3
        return 1.0 - (((y % 3) < 1) | ((((x + (row % 2) * 3 + phase) % 6) < 1))).astype(np.float32)
    raise ValueError(f"unknown style {style}")


def render(scene: Scene, seed: int) -> np.ndarray:
    """uint8 [32, 32, 3] image of ``scene``; ``seed`` fixes the position jitter and texture phase."""
    rng = np.random.default_rng(seed)
    r = RADIUS[scene.size]
    margin = SIZE / 2 - r - 1
    cx, cy = SIZE / 2 + rng.uniform(-margin, margin) * 0.6, SIZE / 2 + rng.uniform(-margin, margin) * 0.6
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    dx, dy = x + 0.5 - cx, y + 0.5 - cy
    mask = _shape_mask(scene.shape, dx, dy, r)
    texture = _texture(scene.style, x, y, dx, dy, r, rng)
    colour = np.array(COLOURS[scene.colour], dtype=np.float32)
    dark = colour * 0.3 + (40.0 if scene.background == "black" else 0.0)
    fill = dark + (colour - dark) * texture[..., None]
    image = np.empty((SIZE, SIZE, 3), dtype=np.float32)
    image[:] = np.array(BACKGROUNDS[scene.background], dtype=np.float32)
    image[mask] = fill[mask]
    return np.clip(image, 0, 255).astype(np.uint8)


def random_scene(rng: np.random.Generator, **fixed: str) -> Scene:
    """A uniformly drawn scene; ``fixed`` pins some attributes (e.g. style="stripes")."""
    values = {name: fixed.get(name) or options[rng.integers(len(options))] for name, options in ATTRIBUTES.items()}
    return Scene(**values)


def dataset(count: int, seed: int, **fixed: str) -> list[tuple[Scene, int]]:
    """``count`` (scene, render seed) pairs drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    return [(random_scene(rng, **fixed), int(rng.integers(2**31))) for _ in range(count)]
