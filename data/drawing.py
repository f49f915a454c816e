"""The synthetic flowers of the committed sample (data/make_sample.py): one jittered drawing each.

Every class has its own colour and petal shape, so a small CNN learns it in a
few epochs on a CPU; jitter in position, scale, rotation, petal count,
brightness and background keeps the images from being identical. Everything
is drawn from the generator it is given, so a seed gives the same picture.
"""

import math

import numpy as np
from PIL import Image, ImageDraw

MIN_SIDE, MAX_SIDE = 88, 104  # image height and width are each drawn from this range
SUPERSAMPLE = 2  # draw at 2x, then downsample for smooth edges

# Background palettes: (top colour, bottom colour) of a vertical gradient.
BACKGROUNDS = (
  ((70, 110, 50), (35, 70, 30)),  # foliage
  ((110, 95, 60), (75, 65, 40)),  # soil / bark
  ((140, 165, 185), (60, 110, 45)),  # pale sky over grass
)


def _jitter_colour(rng, rgb, amount=18):
  """Return ``rgb`` with each channel moved by up to ``amount``, clipped to 0..255."""
  return _shade(np.asarray(rgb, dtype=float) + rng.uniform(-amount, amount, size=3))


def _shade(rgb, factor=1.0):
  """``rgb`` (any sequence of 3 numbers) scaled by ``factor`` as a clipped int tuple."""
  return tuple(int(c) for c in np.clip(np.asarray(rgb, dtype=float) * factor, 0, 255))


def _ellipse_points(cx, cy, a, b, angle, n=18):
  """Polygon points of an ellipse centred at (cx, cy), semi-axes a (along angle) and b."""
  cos_t, sin_t = math.cos(angle), math.sin(angle)
  points = []
  for k in range(n):
    t = 2 * math.pi * k / n
    x, y = a * math.cos(t), b * math.sin(t)
    points.append((cx + x * cos_t - y * sin_t, cy + x * sin_t + y * cos_t))
  return points


def _petal(draw, cx, cy, angle, dist, length, width, colour):
  """Draw one elliptical petal pointing along ``angle`` from the flower centre."""
  px = cx + math.cos(angle) * dist
  py = cy + math.sin(angle) * dist
  draw.polygon(_ellipse_points(px, py, length, width, angle), fill=colour)


def _disc(draw, cx, cy, radius, colour):
  """Draw a filled circle of ``radius`` centred at (cx, cy)."""
  draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)


def _petal_ring(rng, draw, cx, cy, r, rot, rgb, amount, dist, length, width):
  """Draw 14-20 petals of one colour (``rgb`` jittered by ``amount``) evenly round the centre.

  ``dist``, ``length`` and ``width`` are fractions of the flower radius ``r``.
  """
  count = int(rng.integers(14, 21))
  colour = _jitter_colour(rng, rgb, amount)
  for k in range(count):
    angle = rot + 2 * math.pi * k / count
    _petal(draw, cx, cy, angle, dist * r, length * r, width * r, colour)


def draw_background(rng, size):
  """Gradient background (foliage, soil or sky) with blotchy and fine noise."""
  w, h = size
  top, bottom = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
  top, bottom = _jitter_colour(rng, top, 10), _jitter_colour(rng, bottom, 10)
  ramp = np.linspace(0.0, 1.0, h)[:, None, None]
  img = (1 - ramp) * np.array(top) + ramp * np.array(bottom)
  img = np.broadcast_to(img, (h, w, 3)).copy()
  # Low-frequency blotches: coarse noise (mostly light/dark, a little colour)
  # upsampled to full size.
  coarse = rng.normal(0, 12, size=(6, 6, 1)) + rng.normal(0, 4, size=(6, 6, 3))
  blotch = Image.fromarray(((coarse + 128).clip(0, 255)).astype(np.uint8))
  img += np.asarray(blotch.resize((w, h), Image.Resampling.BICUBIC), dtype=float) - 128
  img += rng.normal(0, 3, size=img.shape)
  return Image.fromarray(img.clip(0, 255).astype(np.uint8))


def draw_clutter(rng, draw, size):
  """A few grass blades and leaves scattered over the background."""
  w, h = size
  for _ in range(rng.integers(3, 9)):
    x, y = rng.uniform(0, w), rng.uniform(h * 0.3, h)
    angle = rng.uniform(-math.pi * 0.8, -math.pi * 0.2)
    length = rng.uniform(0.15, 0.4) * h
    colour = _jitter_colour(rng, (50, 120, 40), 25)
    end = (x + math.cos(angle) * length, y + math.sin(angle) * length)
    draw.line([(x, y), end], fill=colour, width=int(rng.integers(2, 6)))
  for _ in range(rng.integers(0, 3)):
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    a, b = rng.uniform(0.06, 0.12) * w, rng.uniform(0.02, 0.05) * w
    colour = _jitter_colour(rng, (60, 105, 45), 25)
    draw.polygon(_ellipse_points(cx, cy, a, b, rng.uniform(0, math.pi)), fill=colour)


def draw_stem(rng, draw, cx, cy, radius, height):
  """Green stem from the flower head down to the bottom edge."""
  colour = _jitter_colour(rng, (45, 110, 35), 15)
  bottom_x = cx + rng.uniform(-0.5, 0.5) * radius
  draw.line([(cx, cy), (bottom_x, height)], fill=colour, width=max(2, int(radius * 0.12)))


def draw_rose(rng, draw, cx, cy, r, rot):
  """Deep red, dense: rings of overlapping rounded petals, darker towards the centre."""
  base = _jitter_colour(rng, (175, 20, 40), 20)
  for ring, (dist, size, shade) in enumerate(
    ((0.55, 0.5, 1.0), (0.35, 0.42, 0.8), (0.15, 0.35, 0.62))
  ):
    count = int(rng.integers(6, 9)) - ring
    for k in range(count):
      angle = rot + ring * 0.5 + 2 * math.pi * k / count
      _petal(draw, cx, cy, angle, dist * r, size * r, size * r * 0.8, _shade(base, shade))
  _disc(draw, cx, cy, 0.12 * r, _shade(base, 0.45))


def draw_sunflower(rng, draw, cx, cy, r, rot):
  """Bright yellow pointed petals around a large dark-brown centre."""
  _petal_ring(rng, draw, cx, cy, r, rot, (245, 200, 20), 15, 0.62, 0.38, 0.13)
  _disc(draw, cx, cy, 0.45 * r, _jitter_colour(rng, (80, 45, 15), 12))
  _disc(draw, cx, cy, 0.28 * r, _jitter_colour(rng, (55, 30, 10), 8))


def draw_daisy(rng, draw, cx, cy, r, rot):
  """White slender petals around a small yellow centre."""
  _petal_ring(rng, draw, cx, cy, r, rot, (245, 245, 240), 8, 0.55, 0.45, 0.1)
  _disc(draw, cx, cy, 0.18 * r, _jitter_colour(rng, (240, 190, 30), 12))


def draw_dandelion(rng, draw, cx, cy, r, rot):
  """Orange-gold fluffy head: many thin radiating strands in a few layers."""
  gold = _jitter_colour(rng, (245, 120, 10), 12)
  _disc(draw, cx, cy, 0.6 * r, _shade(gold, 0.9))  # dense core under the strands
  for layer, (reach, shade) in enumerate(((1.0, 0.85), (0.75, 1.0), (0.45, 1.1))):
    count = int(rng.integers(36, 56))
    colour = _shade(gold, shade)
    for k in range(count):
      angle = rot + layer * 0.07 + 2 * math.pi * k / count + rng.uniform(-0.05, 0.05)
      length = reach * r * rng.uniform(0.85, 1.0)
      end = (cx + math.cos(angle) * length, cy + math.sin(angle) * length)
      draw.line([(cx, cy), end], fill=colour, width=3)
  _disc(draw, cx, cy, 0.2 * r, gold)


def draw_tulip(rng, draw, cx, cy, r, rot):
  """Pink/magenta cup of 3-5 broad upright petals (``rot`` only tilts the cup)."""
  count = int(rng.integers(3, 6))
  base = _jitter_colour(rng, (225, 55, 175), 18)
  tilt = (rot % (2 * math.pi) - math.pi) * 0.1
  spread = 0.9
  for k in range(count):
    frac = (k / (count - 1)) - 0.5
    angle = -math.pi / 2 + tilt + frac * spread
    colour = _shade(base, 0.8 + 0.3 * (1 - abs(frac) * 2))  # middle petal brightest
    px = cx + frac * 0.6 * r
    py = cy - 0.1 * r
    draw.polygon(_ellipse_points(px, py, 0.95 * r, 0.42 * r, angle), fill=colour)
  # Rounded bottom of the cup.
  draw.chord(
    [cx - 0.7 * r, cy - 0.4 * r, cx + 0.7 * r, cy + 0.8 * r], 0, 180, fill=_shade(base, 0.85)
  )


DRAWERS = (draw_rose, draw_sunflower, draw_daisy, draw_dandelion, draw_tulip)


def draw_flower(rng, label):
  """Return a PIL RGB image of one jittered flower of class ``label``."""
  w, h = (int(v) for v in rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2))
  big = (w * SUPERSAMPLE, h * SUPERSAMPLE)
  img = draw_background(rng, big)
  draw = ImageDraw.Draw(img)
  draw_clutter(rng, draw, big)
  side = min(big)
  radius = side * rng.uniform(0.34, 0.44)
  cx = big[0] / 2 + rng.uniform(-0.12, 0.12) * side
  cy = big[1] / 2 + rng.uniform(-0.12, 0.12) * side
  draw_stem(rng, draw, cx, cy, radius, big[1])
  DRAWERS[label](rng, draw, cx, cy, radius, rng.uniform(0, 2 * math.pi))
  img = img.resize((w, h), Image.Resampling.LANCZOS)
  brightness = rng.uniform(0.85, 1.12)
  arr = np.asarray(img, dtype=float) * brightness
  return Image.fromarray(arr.clip(0, 255).astype(np.uint8))
