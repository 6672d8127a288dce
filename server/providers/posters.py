"""Generated SVG posters for items that have no artwork of their own.

The output depends only on the arguments, so a poster can be cached for as long as its key lives.
It is self-contained (no scripts, links, images or web fonts) and every text is escaped, because
titles may come from catalogue files that nobody reviewed.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import random
import re
import textwrap
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape

CONTENT_TYPE = "image/svg+xml"
DEFAULT_WIDTH = 600
MIN_WIDTH = 100
MAX_WIDTH = 1200

# Drawing happens in this fixed 2:3 box; only the width and height attributes follow the request.
_BOX_W = 400
_BOX_H = 600
_FONT = "Georgia, 'Times New Roman', serif"
_TITLE_WIDTH = 360
# The title stands at the top: clients show the facts on a panel over the poster's lower part
# (the web client's card crops and covers about its lowest quarter), where it would be half hidden.
_TITLE_TOP = 72
# Motifs are drawn for the box's upper part and moved down, below the title; those that fill the
# whole box reach up by as much.
_MOTIF_SHIFT = 150
_TITLE_SIZES = (52, 44, 38, 32, 26)
_TITLE_MAX_LINES = 4
# Average advance of a bold serif glyph in em, to guess how many characters fit on a line.
_GLYPH_EM = 0.62

# Characters XML 1.0 cannot carry at all (controls, lone surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

Motif = Callable[[random.Random, str], str]


def poster_width(width: int | None) -> int:
    """The width to render: the default when none was asked for, else clamped to a sane range."""
    if width is None:
        return DEFAULT_WIDTH
    return max(MIN_WIDTH, min(MAX_WIDTH, width))


def render_poster(
    key: str, title: str, *, year: int | None = None, genres: Sequence[str] = (), width: int | None = None
) -> bytes:
    """An SVG poster whose colours come from ``key`` and whose motif comes from the first known genre."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    hue = digest[0] / 255
    top = _hex(hue, 0.34, 0.55)
    bottom = _hex((hue + 0.1 + digest[1] / 255 * 0.25) % 1, 0.1, 0.45)
    accent = _hex((hue + 0.5) % 1, 0.72, 0.65)
    rng = random.Random(digest)
    motif = next((_MOTIFS[genre] for genre in genres if genre in _MOTIFS), _spotlight)
    rendered_width = poster_width(width)
    name = _text(title) or "Untitled"
    label = name if year is None else f"{name} ({year})"
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{rendered_width}" height="{rendered_width * 3 // 2}"'
        f' viewBox="0 0 {_BOX_W} {_BOX_H}" role="img">',
        f"<title>{_escape(label)}</title>",
        "<defs>",
        # In user space, so that a shape filled with it (the moon's shadow) blends into the background.
        '<linearGradient id="bg" gradientUnits="userSpaceOnUse" x1="0" y1="0" x2="120" y2="600">'
        f'<stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/></linearGradient>',
        '<linearGradient id="shade" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#000" stop-opacity="0.8"/>'
        '<stop offset="1" stop-color="#000" stop-opacity="0"/></linearGradient>',
        "</defs>",
        f'<rect width="{_BOX_W}" height="{_BOX_H}" fill="url(#bg)"/>',
        f'<g transform="translate(0 {_MOTIF_SHIFT})">{motif(rng, accent)}</g>',
        f'<rect width="{_BOX_W}" height="320" fill="url(#shade)"/>',
        _genre_line(genres),
    ]
    title, last_baseline = _title_block(name)
    parts.append(title)
    if year is not None:
        parts.append(
            f'<text x="200" y="{last_baseline + 34}" text-anchor="middle" font-family="{_FONT}" font-size="22"'
            f' fill="#fff" fill-opacity="0.75">{year}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts).encode("utf-8")


def _text(value: str) -> str:
    return " ".join(_NOT_XML.sub("", value).split())


def _escape(value: str) -> str:
    return escape(value, {'"': "&quot;", "'": "&apos;"})


def _hex(hue: float, lightness: float, saturation: float) -> str:
    red, green, blue = colorsys.hls_to_rgb(hue, lightness, saturation)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def _genre_line(genres: Sequence[str]) -> str:
    text = " · ".join(_text(genre).upper() for genre in genres[:2] if _text(genre))
    if not text:
        return ""
    return (
        f'<text x="200" y="46" text-anchor="middle" font-family="{_FONT}" font-size="14" letter-spacing="3"'
        f' fill="#fff" fill-opacity="0.8">{_escape(text)}</text>'
    )


def _title_block(title: str) -> tuple[str, int]:
    """The title's text element at the top, and the baseline of its last line."""
    # The largest size at which the title fits without splitting a word; else the smallest, split.
    for size in _TITLE_SIZES:
        per_line = max(1, int(_TITLE_WIDTH / (size * _GLYPH_EM)))
        lines = textwrap.wrap(title, per_line, break_long_words=False)
        if len(lines) <= _TITLE_MAX_LINES and all(len(line) <= per_line for line in lines):
            break
    else:
        lines = textwrap.wrap(title, per_line)
        if len(lines) > _TITLE_MAX_LINES:
            lines = lines[:_TITLE_MAX_LINES]
            lines[-1] = lines[-1][: per_line - 1].rstrip() + "…"
    step = round(size * 1.12)
    first = _TITLE_TOP + round(size * 0.8)
    spans = "".join(
        f'<tspan x="200" y="{first + index * step}">{_escape(line)}</tspan>' for index, line in enumerate(lines)
    )
    text = (
        f'<text text-anchor="middle" font-family="{_FONT}" font-size="{size}" font-weight="bold"'
        f' fill="#fff">{spans}</text>'
    )
    return text, first + step * (len(lines) - 1)


# -- motifs: simple shapes in the upper part of the box, hinting at the genre ------------------------


def _star_field(rng: random.Random, count: int) -> str:
    return "".join(
        f'<circle cx="{rng.uniform(10, 390):.0f}" cy="{rng.uniform(10, 330):.0f}" r="{rng.uniform(0.8, 2.4):.1f}"'
        ' fill="#fff" fill-opacity="0.7"/>'
        for _ in range(count)
    )


def _moon(rng: random.Random, accent: str) -> str:
    x, y = rng.uniform(230, 300), rng.uniform(120, 170)
    hills = " ".join(f"{step * 40},{rng.uniform(300, 345):.0f}" for step in range(11))
    return (
        f'<circle cx="{x:.0f}" cy="{y:.0f}" r="70" fill="#f4f1e0" fill-opacity="0.85"/>'
        f'<circle cx="{x + 28:.0f}" cy="{y - 16:.0f}" r="62" fill="url(#bg)"/>'
        f'<polygon points="0,600 0,330 {hills} 400,600" fill="#000" fill-opacity="0.55"/>'
    )


def _planet(rng: random.Random, accent: str) -> str:
    x, y = rng.uniform(150, 250), rng.uniform(150, 210)
    tilt = rng.uniform(-25, 25)
    return (
        _star_field(rng, 40) + f'<circle cx="{x:.0f}" cy="{y:.0f}" r="78" fill="{accent}" fill-opacity="0.85"/>'
        f'<ellipse cx="{x:.0f}" cy="{y:.0f}" rx="140" ry="26" fill="none" stroke="#fff" stroke-opacity="0.7"'
        f' stroke-width="6" transform="rotate({tilt:.0f} {x:.0f} {y:.0f})"/>'
    )


def _sparkles(rng: random.Random, accent: str) -> str:
    shapes = []
    for _ in range(9):
        x, y, r = rng.uniform(30, 370), rng.uniform(70, 320), rng.uniform(6, 22)
        shapes.append(
            f'<polygon points="{x:.0f},{y - r:.0f} {x + r / 4:.0f},{y - r / 4:.0f} {x + r:.0f},{y:.0f}'
            f" {x + r / 4:.0f},{y + r / 4:.0f} {x:.0f},{y + r:.0f} {x - r / 4:.0f},{y + r / 4:.0f}"
            f' {x - r:.0f},{y:.0f} {x - r / 4:.0f},{y - r / 4:.0f}" fill="{accent}" fill-opacity="0.8"/>'
        )
    return _star_field(rng, 25) + "".join(shapes)


def _heart(rng: random.Random, accent: str) -> str:
    x, y = rng.uniform(180, 220), rng.uniform(130, 160)
    return (
        f'<path d="M {x:.0f} {y + 40:.0f} C {x - 20:.0f} {y - 20:.0f} {x - 110:.0f} {y:.0f} {x - 80:.0f} {y + 80:.0f}'
        f" L {x:.0f} {y + 170:.0f} L {x + 80:.0f} {y + 80:.0f} C {x + 110:.0f} {y:.0f} {x + 20:.0f} {y - 20:.0f}"
        f' {x:.0f} {y + 40:.0f} Z" fill="{accent}" fill-opacity="0.8"/>'
    )


def _sunburst(rng: random.Random, accent: str) -> str:
    turn = rng.uniform(0, 20)
    wedges = "".join(
        f'<polygon points="200,200 {_ray(turn + start)} {_ray(turn + start + 10)}"/>' for start in range(0, 360, 20)
    )
    return (
        f'<g fill="#fff" fill-opacity="0.12">{wedges}</g>'
        f'<circle cx="200" cy="200" r="58" fill="{accent}" fill-opacity="0.9"/>'
    )


def _ray(degrees: float) -> str:
    """A point far outside the box in this direction from the burst's centre."""
    radians = math.radians(degrees)
    return f"{200 + 600 * math.cos(radians):.0f},{200 + 600 * math.sin(radians):.0f}"


def _blinds(rng: random.Random, accent: str) -> str:
    slope = rng.uniform(60, 140)
    slats = "".join(
        f'<polygon points="0,{y} 400,{y - slope:.0f} 400,{y - slope + 16:.0f} 0,{y + 16}"/>'
        for y in range(40 - _MOTIF_SHIFT, _BOX_H - _MOTIF_SHIFT, 34)
    )
    return f'<g fill="#000" fill-opacity="0.35">{slats}</g>'


def _mesa(rng: random.Random, accent: str) -> str:
    sun_x = rng.uniform(120, 280)
    top = rng.uniform(250, 280)
    return (
        f'<circle cx="{sun_x:.0f}" cy="250" r="90" fill="{accent}" fill-opacity="0.85"/>'
        f'<polygon points="0,600 0,{top:.0f} 90,{top:.0f} 120,330 250,330 270,{top + 20:.0f} 340,{top + 20:.0f}'
        ' 370,340 400,340 400,600" fill="#000" fill-opacity="0.6"/>'
    )


def _peaks(rng: random.Random, accent: str) -> str:
    ridge = " ".join(
        f"{step * 50},{rng.uniform(170, 330) if step % 2 else rng.uniform(300, 360):.0f}" for step in range(9)
    )
    return (
        f'<circle cx="{rng.uniform(80, 320):.0f}" cy="120" r="40" fill="{accent}" fill-opacity="0.85"/>'
        f'<polygon points="0,600 {ridge} 400,600" fill="#000" fill-opacity="0.5"/>'
    )


def _searchlights(rng: random.Random, accent: str) -> str:
    beams = "".join(
        f'<polygon points="{base:.0f},{_BOX_H - _MOTIF_SHIFT} {base + lean - 30:.0f},{-_MOTIF_SHIFT}'
        f' {base + lean + 30:.0f},{-_MOTIF_SHIFT}"/>'
        for base, lean in (
            (rng.uniform(40, 160), rng.uniform(40, 160)),
            (rng.uniform(240, 360), rng.uniform(-160, -40)),
        )
    )
    return f'<g fill="#fff" fill-opacity="0.14">{beams}</g>'


def _filmstrip(rng: random.Random, accent: str) -> str:
    holes = "".join(
        f'<rect x="{x}" y="{y}" width="14" height="18" rx="3"/>'
        for x in (8, 378)
        for y in range(12 - _MOTIF_SHIFT, _BOX_H - _MOTIF_SHIFT, 34)
    )
    frames = "".join(f'<rect x="50" y="{y}" width="300" height="130" rx="6"/>' for y in (80, 230))
    return (
        f'<rect y="{-_MOTIF_SHIFT}" width="30" height="{_BOX_H}" fill="#000" fill-opacity="0.5"/>'
        f'<rect x="370" y="{-_MOTIF_SHIFT}" width="30" height="{_BOX_H}" fill="#000" fill-opacity="0.5"/>'
        f'<g fill="#fff" fill-opacity="0.5">{holes}</g>'
        f'<g fill="none" stroke="{accent}" stroke-opacity="0.7" stroke-width="4">{frames}</g>'
    )


def _bubbles(rng: random.Random, accent: str) -> str:
    return "".join(
        f'<circle cx="{rng.uniform(20, 380):.0f}" cy="{rng.uniform(40, 340):.0f}" r="{rng.uniform(10, 60):.0f}"'
        f' fill="{accent if index % 2 else "#fff"}" fill-opacity="{rng.uniform(0.2, 0.6):.2f}"/>'
        for index in range(14)
    )


def _notes(rng: random.Random, accent: str) -> str:
    shapes = []
    for _ in range(5):
        x, y = rng.uniform(40, 340), rng.uniform(120, 320)
        shapes.append(
            f'<ellipse cx="{x:.0f}" cy="{y:.0f}" rx="16" ry="11" transform="rotate(-20 {x:.0f} {y:.0f})"/>'
            f'<rect x="{x + 12:.0f}" y="{y - 80:.0f}" width="5" height="80"/>'
            f'<path d="M {x + 17:.0f} {y - 80:.0f} q 20 14 16 40 q -2 -18 -16 -22 z"/>'
        )
    return f'<g fill="{accent}" fill-opacity="0.85">{"".join(shapes)}</g>'


def _spotlight(rng: random.Random, accent: str) -> str:
    x = rng.uniform(120, 280)
    return (
        f'<polygon points="{x - 20:.0f},0 {x + 20:.0f},0 {x + 130:.0f},330 {x - 130:.0f},330"'
        ' fill="#fff" fill-opacity="0.13"/>'
        f'<ellipse cx="{x:.0f}" cy="330" rx="130" ry="22" fill="{accent}" fill-opacity="0.5"/>'
    )


_MOTIFS: dict[str, Motif] = {
    "Horror": _moon,
    "Science Fiction": _planet,
    "Fantasy": _sparkles,
    "Romance": _heart,
    "Comedy": _sunburst,
    "Film Noir": _blinds,
    "Crime": _blinds,
    "Thriller": _blinds,
    "Mystery": _blinds,
    "Western": _mesa,
    "Adventure": _peaks,
    "Action": _peaks,
    "War": _searchlights,
    "Documentary": _filmstrip,
    "Animation": _bubbles,
    "Musical": _notes,
    "Drama": _spotlight,
}
