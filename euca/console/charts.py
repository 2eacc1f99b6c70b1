"""The administrator's pictures, drawn on the server as inline SVG: each zone's ``free / max`` per
VM type as bars, and the cluster's use over the last hours from a ring of samples the housekeeping
tick takes."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from euca.cluster import ClusterController

SAMPLE_EVERY = 60.0  # seconds between samples kept
SAMPLES = 360  # six hours of them


@dataclass(frozen=True)
class Sample:
    when: float
    instances: int
    cores_used: int
    cores: int


class Usage:
    """A ring of the cluster's use: at most one sample per ``every`` seconds, the newest ``size`` kept."""

    def __init__(self, cc: ClusterController, every: float = SAMPLE_EVERY, size: int = SAMPLES,
                 clock: Callable[[], float] = time.time) -> None:
        self._cc, self.every, self.clock = cc, every, clock
        self.samples: deque[Sample] = deque(maxlen=size)

    def now(self) -> Sample:
        used = total = 0
        placement = self._cc.placement
        for node in self._cc.nodes:
            total += placement.max(node.index)[0]
            used += placement.max(node.index)[0] - placement.free(node.index)[0]
        return Sample(self.clock(), len(self._cc.running()), used, total)

    def sample(self) -> None:
        now = self.clock()
        if self.samples and now - self.samples[-1].when < self.every:
            return
        self.samples.append(self.now())


def zone_bars(zone: str, rows: Sequence[tuple[str, int, int]]) -> Markup:
    """Bars per VM type: the whole bar is ``max``, the filled part ``free``."""
    width, label, bar_h, gap = 520, 90, 18, 8
    height = 24 + len(rows) * (bar_h + gap)
    most = max([1, *(m for _, _, m in rows)])
    span = width - label - 110
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(zone)}: free / max per VM type</title>',
             f'<text x="0" y="14" class="chart-title">{escape(zone)}</text>']
    for n, (name, free, top) in enumerate(rows):
        y = 24 + n * (bar_h + gap)
        full = span * top / most
        part = span * free / most
        parts.append(f'<text x="0" y="{y + 13}">{escape(name)}</text>'
                     f'<rect x="{label}" y="{y}" width="{full:.1f}" height="{bar_h}" class="bar-max"/>'
                     f'<rect x="{label}" y="{y}" width="{part:.1f}" height="{bar_h}" class="bar-free"/>'
                     f'<text x="{label + span + 8}" y="{y + 13}">{free:04d} / {top:04d}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def usage_plot(samples: Sequence[Sample]) -> Markup:
    """Cores in use (as a share of all the nodes' cores) and running instances over time."""
    width, height, left, top, bottom = 560, 200, 40, 12, 28
    inner_w, inner_h = width - left - 10, height - top - bottom
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             'xmlns="http://www.w3.org/2000/svg"><title>cluster use over time</title>',
             f'<rect x="{left}" y="{top}" width="{inner_w}" height="{inner_h}" class="plot-area"/>']
    for pct in (0, 50, 100):
        y = top + inner_h * (1 - pct / 100)
        parts.append(f'<text x="2" y="{y + 4:.1f}">{pct}%</text>')
    if samples:
        first, last = samples[0].when, samples[-1].when
        spread = max(last - first, 1.0)
        peak = max(s.instances for s in samples)
        most = max(1, peak)

        def x(s: Sample) -> float:
            return left + inner_w * (s.when - first) / spread if len(samples) > 1 else left + inner_w / 2

        cores = " ".join(f"{x(s):.1f},{top + inner_h * (1 - (s.cores_used / s.cores if s.cores else 0)):.1f}"
                         for s in samples)
        count = " ".join(f"{x(s):.1f},{top + inner_h * (1 - s.instances / most):.1f}" for s in samples)
        parts.append(f'<polyline points="{cores}" class="line-cores"/>'
                     f'<polyline points="{count}" class="line-instances"/>')
        for s in samples[-1:]:
            parts.append(f'<circle cx="{x(s):.1f}" cy="{top + inner_h * (1 - s.instances / most):.1f}" r="3" '
                         'class="dot-instances"/>')
        seconds = last - first
        span_text = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
        parts.append(f'<text x="{left}" y="{height - 8}">{escape(time.strftime("%H:%M", time.localtime(first)))}'
                     f'</text><text x="{left + inner_w - 40}" y="{height - 8}">'
                     f'{escape(time.strftime("%H:%M", time.localtime(last)))}</text>'
                     f'<text x="{left + inner_w / 2 - 60}" y="{height - 8}">{span_text}, peak {peak} '
                     'instances</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
