"""Generated backgrounds for replace_background: solid hex colours, seeded scenes from text, reference images.

Deviation from the real service: nothing here is a generative model. A text prompt
picks a palette (colour words it names, the rest from a hash of the request) and a
layout per mode; reference images are cover-cropped and averaged. Everything is
painted on a canvas of at most ``CANVAS_SIDE`` pixels a side and scaled up, so the
cost does not grow with the output size beyond one resize.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import random
import re
from collections.abc import Callable, Sequence

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

RGB = tuple[int, int, int]
Painter = Callable[[tuple[int, int], list[RGB], random.Random, Sequence[str]], Image.Image]

MODES = ("base", "high_control", "fast")
CANVAS_SIDE = 256
"""Longest side, in pixels, of the canvas text backgrounds are painted on."""

HEX_COLOUR = re.compile(r"#([0-9a-f]{6}|[0-9a-f]{3})(?![0-9a-f])", re.IGNORECASE)

# Words (in prompts and negative prompts) that name a colour, and the colour they name.
# fmt: off
COLOUR_WORDS: dict[str, RGB] = {
    "red": (200, 40, 40), "orange": (235, 130, 40), "yellow": (240, 210, 60), "gold": (212, 175, 55),
    "green": (60, 150, 70), "teal": (30, 140, 140), "cyan": (60, 200, 220), "blue": (50, 90, 200),
    "navy": (20, 30, 80), "purple": (120, 60, 170), "violet": (140, 90, 200), "pink": (235, 140, 180),
    "brown": (120, 80, 50), "beige": (225, 210, 180), "black": (20, 20, 24), "white": (245, 245, 245),
    "gray": (128, 128, 128), "grey": (128, 128, 128), "silver": (190, 190, 200), "beach": (230, 210, 160),
    "sand": (225, 200, 150), "desert": (220, 180, 120), "sea": (30, 100, 160), "ocean": (25, 90, 150),
    "sky": (135, 190, 235), "forest": (30, 90, 45), "grass": (80, 160, 60), "snow": (240, 245, 250),
    "night": (15, 20, 45), "sunset": (245, 120, 60), "city": (110, 110, 120), "street": (95, 95, 100),
    "parking": (100, 100, 105), "concrete": (160, 160, 155), "studio": (235, 235, 235), "wood": (140, 95, 55),
    "wooden": (140, 95, 55), "kitchen": (215, 205, 190), "office": (200, 200, 205),
}
# fmt: on

_BANNED_DISTANCE = 100.0
# radial_gradient() is 181 on its inscribed circle: fade from half strength at the centre to 0 there.
_SPOT_LUT = [round(127 * (1 - min(1.0, value / 181)) ** 2) for value in range(256)]
_MAX_FEATURE_WORDS = 8


def find_hex_colour(prompt: str) -> RGB | None:
    """Return the first ``#RRGGBB`` or ``#RGB`` colour found anywhere in ``prompt``, if any."""
    match = HEX_COLOUR.search(prompt)
    if match is None:
        return None
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(digit * 2 for digit in digits)
    red, green, blue = bytes.fromhex(digits)
    return red, green, blue


def make_background(
    size: tuple[int, int],
    *,
    prompt: str | None,
    ref_images: Sequence[Image.Image],
    mode: str,
    seed: int,
    negative_prompt: str | None,
    enhance_ref_images: bool,
) -> Image.Image:
    """Return an RGB background of ``size``: from the prompt if there is one, else from the reference images."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if prompt is not None:
        colour = find_hex_colour(prompt)
        if colour is not None:
            return Image.new("RGB", size, colour)
        return text_background(size, prompt=prompt, mode=mode, seed=seed, negative_prompt=negative_prompt)
    if ref_images:
        return reference_background(size, ref_images, seed=seed, enhance=enhance_ref_images)
    raise ValueError("a background needs a prompt or at least one reference image")


def text_background(
    size: tuple[int, int], *, prompt: str, mode: str, seed: int, negative_prompt: str | None
) -> Image.Image:
    """Paint a deterministic background for a text prompt; ``negative_prompt`` is ignored in ``fast`` mode."""
    negative = None if mode == "fast" else negative_prompt
    rng = _rng("text", prompt, mode, seed, negative)
    palette = _palette(rng, prompt, negative or "")
    painted = _PAINTERS[mode](_canvas_size(size), palette, rng, _feature_words(prompt))
    return painted.resize(size, Image.Resampling.BICUBIC)


def reference_background(
    size: tuple[int, int], refs: Sequence[Image.Image], *, seed: int, enhance: bool
) -> Image.Image:
    """Cover-crop every (RGB) reference to ``size`` at a seed-chosen offset, optionally enhance, and average them."""
    rng = _rng("refs", seed)
    layers = [_cover(ref, size, (rng.random(), rng.random())) for ref in refs]
    if enhance:
        layers = [_enhance(layer) for layer in layers]
    return _mean(layers)


def _rng(*parts: object) -> random.Random:
    """A generator keyed by a hash of ``parts``; callers use only ``random()``, which is stable across Pythons."""
    digest = hashlib.sha256("\x1f".join(repr(part) for part in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _named_colours(text: str) -> list[RGB]:
    """Colours named by the words of ``text``, in order, without repeats."""
    named: list[RGB] = []
    for word in re.findall(r"[a-z]+", text.lower()):
        colour = COLOUR_WORDS.get(word)
        if colour is not None and colour not in named:
            named.append(colour)
    return named


def _palette(rng: random.Random, prompt: str, negative: str) -> list[RGB]:
    """Three colours: those the prompt names (nudged by the hash), then hashed ones; none near a banned colour."""
    banned = _named_colours(negative)
    named = [colour for colour in _named_colours(prompt) if not _is_near(colour, banned)]
    palette: list[RGB] = []
    for index in range(3):
        if named:
            palette.append(_mix(named[index % len(named)], _random_colour(rng), 0.2))
        else:
            palette.append(_allowed_colour(rng, banned))
    return palette


def _allowed_colour(rng: random.Random, banned: list[RGB]) -> RGB:
    """Draw hashed colours until one is far from every banned colour (the complement as a last resort)."""
    colour = _random_colour(rng)
    for _ in range(16):
        if not _is_near(colour, banned):
            return colour
        colour = _random_colour(rng)
    red, green, blue = banned[0]
    return 255 - red, 255 - green, 255 - blue


def _random_colour(rng: random.Random) -> RGB:
    """A moderately saturated colour of any hue."""
    red, green, blue = colorsys.hsv_to_rgb(rng.random(), 0.2 + 0.6 * rng.random(), 0.35 + 0.6 * rng.random())
    return round(255 * red), round(255 * green), round(255 * blue)


def _is_near(colour: RGB, others: Sequence[RGB]) -> bool:
    """True when ``colour`` is within the banned distance of any of ``others`` (Euclidean RGB)."""
    return any(math.dist(colour, other) < _BANNED_DISTANCE for other in others)


def _mix(first: RGB, second: RGB, share: float) -> RGB:
    """Blend ``share`` of ``second`` into ``first``."""
    red, green, blue = (round(a + (b - a) * share) for a, b in zip(first, second, strict=True))
    return red, green, blue


def _shade(colour: RGB, factor: float) -> RGB:
    """Scale a colour's brightness (below 1 darkens)."""
    red, green, blue = (min(255, round(channel * factor)) for channel in colour)
    return red, green, blue


def _feature_words(prompt: str) -> list[str]:
    """Distinct words of three letters or more, in order: each one becomes a shape in ``high_control`` mode."""
    words = dict.fromkeys(word for word in re.findall(r"[a-z]+", prompt.lower()) if len(word) >= 3)
    return list(words)[:_MAX_FEATURE_WORDS]


def _canvas_size(size: tuple[int, int]) -> tuple[int, int]:
    """The painting canvas: ``size``'s aspect ratio, longest side ``CANVAS_SIDE``."""
    scale = CANVAS_SIDE / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _angled_ramp(canvas: tuple[int, int], angle: float) -> Image.Image:
    """A 0-255 linear ramp across ``canvas`` running at ``angle`` degrees from vertical."""
    side = math.ceil(math.hypot(*canvas)) + 2
    ramp = Image.linear_gradient("L").resize((side, side), Image.Resampling.BILINEAR)
    ramp = ramp.rotate(angle, Image.Resampling.BILINEAR)
    left, top = (side - canvas[0]) // 2, (side - canvas[1]) // 2
    return ramp.crop((left, top, left + canvas[0], top + canvas[1]))


def _vertical_ramp(canvas: tuple[int, int]) -> Image.Image:
    """A 0-255 ramp from the top of ``canvas`` to its bottom."""
    return Image.linear_gradient("L").resize(canvas, Image.Resampling.BILINEAR)


def _paint_fast(canvas: tuple[int, int], palette: list[RGB], rng: random.Random, words: Sequence[str]) -> Image.Image:
    """``fast``: a plain vertical two-colour gradient."""
    return ImageOps.colorize(_vertical_ramp(canvas), palette[0], palette[1])


def _paint_base(canvas: tuple[int, int], palette: list[RGB], rng: random.Random, words: Sequence[str]) -> Image.Image:
    """``base``: a two-colour gradient at a hashed angle, lit by a soft light spot."""
    gradient = ImageOps.colorize(_angled_ramp(canvas, 360 * rng.random()), palette[0], palette[1])
    light = Image.new("RGB", canvas, _mix(palette[2], (255, 255, 255), 0.6))
    return Image.composite(light, gradient, _light_spot(canvas, rng))


def _light_spot(canvas: tuple[int, int], rng: random.Random) -> Image.Image:
    """A soft round mask (at most half strength) at a hashed place and size."""
    radius = max(1, round(max(canvas) * (0.3 + 0.4 * rng.random())))
    spot = Image.radial_gradient("L").point(_SPOT_LUT).resize((2 * radius, 2 * radius), Image.Resampling.BILINEAR)
    mask = Image.new("L", canvas, 0)
    mask.paste(spot, (round(canvas[0] * rng.random()) - radius, round(canvas[1] * rng.random()) - radius))
    return mask


def _paint_high_control(
    canvas: tuple[int, int], palette: list[RGB], rng: random.Random, words: Sequence[str]
) -> Image.Image:
    """``high_control``: a three-colour sky, a ground below a hashed horizon, and one soft shape per prompt word."""
    sky = ImageOps.colorize(_angled_ramp(canvas, 20 * rng.random() - 10), palette[0], palette[1], mid=palette[2])
    ground = ImageOps.colorize(_vertical_ramp(canvas), _shade(palette[2], 0.6), _shade(palette[2], 0.35))
    horizon = round(canvas[1] * (0.55 + 0.2 * rng.random()))
    below = Image.new("L", canvas, 0)
    below.paste(255, (0, horizon, canvas[0], canvas[1]))
    scene = Image.composite(ground, sky, below.filter(ImageFilter.GaussianBlur(1.5)))
    return _add_word_shapes(scene, palette, rng, words)


def _add_word_shapes(scene: Image.Image, palette: list[RGB], rng: random.Random, words: Sequence[str]) -> Image.Image:
    """Blend one soft ellipse per word over ``scene``; where it sits depends on the word and the request hash."""
    layer = scene.copy()  # outside the shapes the layer is the scene, so blurred mask edges leave no halo
    mask = Image.new("L", scene.size, 0)
    salt = rng.random()
    for word in words:
        _draw_word_shape(layer, mask, word, palette, _rng("word", word, salt))
    strength = [value * 3 // 4 for value in range(256)]
    return Image.composite(layer, scene, mask.filter(ImageFilter.GaussianBlur(4)).point(strength))


def _draw_word_shape(layer: Image.Image, mask: Image.Image, word: str, palette: list[RGB], rng: random.Random) -> None:
    """Draw ``word``'s ellipse into ``layer`` (its colour) and ``mask`` (its coverage)."""
    width, height = layer.size
    radius = max(width, height) * (0.05 + 0.12 * rng.random())
    centre_x, centre_y = width * rng.random(), height * rng.random()
    box = (centre_x - radius, centre_y - 0.7 * radius, centre_x + radius, centre_y + 0.7 * radius)
    colour = palette[int(rng.random() * len(palette))]
    ImageDraw.Draw(layer).ellipse(box, fill=_shade(colour, 0.7 + 0.6 * rng.random()))
    ImageDraw.Draw(mask).ellipse(box, fill=255)


_PAINTERS: dict[str, Painter] = {"base": _paint_base, "high_control": _paint_high_control, "fast": _paint_fast}


def _cover(image: Image.Image, size: tuple[int, int], centering: tuple[float, float]) -> Image.Image:
    """Scale ``image`` to cover ``size`` and crop the overflow, the crop placed by ``centering`` (0-1 each way)."""
    target = size[0] / size[1]
    crop_width, crop_height = float(image.width), float(image.height)
    if image.width / image.height > target:
        crop_width = image.height * target
    else:
        crop_height = image.width / target
    left = (image.width - crop_width) * centering[0]
    top = (image.height - crop_height) * centering[1]
    box = (left, top, left + crop_width, top + crop_height)
    return image.resize(size, Image.Resampling.BICUBIC, box=box, reducing_gap=2.0)


def _enhance(image: Image.Image) -> Image.Image:
    """The ``enhance_ref_images`` step: per-channel auto levels (1% clipped each end), then 20% more saturation."""
    return ImageEnhance.Color(ImageOps.autocontrast(image, cutoff=1)).enhance(1.2)


def _mean(layers: Sequence[Image.Image]) -> Image.Image:
    """The equal-weight average of same-size RGB images, as a running blend."""
    mean = layers[0]
    for count, layer in enumerate(layers[1:], start=2):
        mean = Image.blend(mean, layer, 1 / count)
    return mean
