"""Inline SVG charts shared by report.html and `tunewright ui`: a forest plot of the fine-tuned model's
differences to the baselines with their 95 % intervals, the confusion matrix as a heatmap, and grouped
bars of each candidate's metrics. Plain strings, no JavaScript, so the report stays one file."""

from __future__ import annotations

from html import escape
from typing import Any

from tunewright.config import metric_title

ROW = 22
PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096")
BAR_METRICS = ("label_accuracy", "macro_f1", "rubric_pass_rate", "semantic_similarity", "rouge_l",
               "judge_pass_rate")


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{escape(text)}</text>'


def forest_plot(comparisons: list[dict[str, Any]], width: int = 640) -> str:
    """One row per (metric, baseline): the difference as a dot, its interval as a line, 0 as a rule.
    Green when the interval is above 0, red when below, grey when it contains 0."""
    if not comparisons:
        return ""
    label_w, right_w = 290, 120
    plot_w = width - label_w - right_w
    values = [v for item in comparisons for v in (*item["ci95"], item["difference"], 0.0)]
    low, high = min(values), max(values)
    span = max(high - low, 0.02)
    low, high = low - 0.05 * span, high + 0.05 * span

    def x(value: float) -> float:
        return float(label_w + (value - low) / (high - low) * plot_w)

    height = ROW * len(comparisons) + 36
    parts = [f'<svg class="chart forest" role="img" aria-label="differences with 95% intervals" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-size="12">',
             f'<line x1="{x(0):.1f}" y1="4" x2="{x(0):.1f}" y2="{height - 28}" stroke="#999" stroke-dasharray="3 3"/>']
    for index, item in enumerate(comparisons):
        y = 14 + index * ROW
        lo, hi = item["ci95"]
        colour = "#2f855a" if lo > 0 else "#c53030" if hi < 0 else "#718096"
        label = f"{metric_title(item['metric'])} vs {item['baseline']}"
        parts.append(_text(label_w - 8, y + 4, label if len(label) <= 44 else label[:43] + "…", "end"))
        parts.append(f'<line x1="{x(lo):.1f}" y1="{y}" x2="{x(hi):.1f}" y2="{y}" stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<circle cx="{x(item["difference"]):.1f}" cy="{y}" r="4" fill="{colour}"/>')
        parts.append(_text(width - right_w + 8, y + 4, f"{item['difference'] * 100:+.1f} "
                           f"[{lo * 100:+.1f}, {hi * 100:+.1f}]", extra=f'fill="{colour}"'))
    axis_y = height - 14
    for tick in (low, 0.0, high):
        parts.append(_text(x(tick), axis_y, f"{tick * 100:+.1f}", "middle", 'fill="#555"'))
    parts.append(_text(label_w + plot_w / 2, height - 1, "difference, points (fine-tuned minus baseline)", "middle",
                       'fill="#555" font-size="11"'))
    parts.append("</svg>")
    return "".join(parts)


def confusion_heatmap(confusion: dict[str, dict[str, int]], max_labels: int = 30) -> str:
    """Gold labels down, predicted across; cell colour is the share of the gold row, the diagonal blue,
    mistakes orange. Above max_labels labels, the most frequent gold labels are kept."""
    if not confusion:
        return ""
    gold = sorted(confusion, key=lambda label: -sum(confusion[label].values()))[:max_labels]
    predicted = list(dict.fromkeys([*gold, *(p for g in gold for p in sorted(confusion[g]))]))[: max_labels + 1]
    cell, label_w, top = 26, 150, 120
    width, height = label_w + cell * len(predicted) + 10, top + cell * len(gold) + 10
    parts = [f'<svg class="chart heatmap" role="img" aria-label="confusion matrix" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" font-size="11">']
    for column, label in enumerate(predicted):
        cx = label_w + column * cell + cell / 2
        parts.append(_text(cx, top - 6, label, extra=f'transform="rotate(-45 {cx:.1f} {top - 6})"'))
    for row, label in enumerate(gold):
        counts, total = confusion[label], max(sum(confusion[label].values()), 1)
        y = top + row * cell
        parts.append(_text(label_w - 6, y + cell / 2 + 4, label, "end"))
        for column, guess in enumerate(predicted):
            count = counts.get(guess, 0)
            share = count / total
            colour = (f"rgba(43,108,176,{0.1 + 0.9 * share:.2f})" if guess == label
                      else f"rgba(221,107,32,{0.9 * share:.2f})" if count else "#f7f7f7")
            x = label_w + column * cell
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{colour}">'
                         f'<title>{escape(label)} → {escape(guess)}: {count}</title></rect>')
            if count:
                parts.append(_text(x + cell / 2, y + cell / 2 + 4, str(count), "middle"))
    parts.append("</svg>")
    return "".join(parts)


def grouped_bars(candidates: dict[str, dict[str, Any]], width: int = 640) -> str:
    """One group per metric, one bar per candidate, 0-100 %."""
    metrics = [m for m in BAR_METRICS if any(c.get(m) is not None for c in candidates.values())]
    if not metrics:
        return ""
    names = list(candidates)
    plot_h, top, bottom, left = 160, 24, 40, 36
    group_w = (width - left) / len(metrics)
    bar_w = max(4.0, (group_w - 16) / len(names))
    height = top + plot_h + bottom
    parts = [f'<svg class="chart bars" role="img" aria-label="metrics per candidate" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" font-size="11">']
    for tick in (0, 50, 100):
        y = top + plot_h * (1 - tick / 100)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" stroke="#e2e2e2"/>')
        parts.append(_text(left - 4, y + 4, f"{tick}%", "end", 'fill="#555"'))
    for group, metric in enumerate(metrics):
        x0 = left + group * group_w + 8
        for index, name in enumerate(names):
            value = candidates[name].get(metric)
            if value is None:
                continue
            h = plot_h * value
            parts.append(f'<rect x="{x0 + index * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" '
                         f'height="{h:.1f}" fill="{PALETTE[index % len(PALETTE)]}"><title>{escape(name)} '
                         f'{escape(metric_title(metric))}: {value * 100:.1f}%</title></rect>')
        parts.append(_text(x0 + len(names) * bar_w / 2, top + plot_h + 16, metric_title(metric), "middle"))
    for index, name in enumerate(names):
        x = left + index * 130
        parts.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{PALETTE[index % len(PALETTE)]}"/>')
        parts.append(_text(x + 14, height - 5, name))
    parts.append(_text(left, 14, "metric per candidate (higher is better)", extra='fill="#555"'))
    parts.append("</svg>")
    return "".join(parts)
