"""Server metrics in the Prometheus text format (written here: a few counters and histograms do not need
a client library): requests by model and status, latency histograms, queue depth, tokens per adapter,
and the prefix cache's hits, misses and bytes."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable

from tunewright.serve.prefix_cache import PrefixStats

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, queue_depth: Callable[[], int],
                 prefix_stats: Callable[[], PrefixStats] = lambda: PrefixStats(0, 0, 0)) -> None:
        self.queue_depth, self.prefix_stats = queue_depth, prefix_stats
        self.started = time.monotonic()
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.latency: defaultdict[str, list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS) + 1))
        self.latency_sum: defaultdict[str, float] = defaultdict(float)
        self.tokens: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.generation_seconds: defaultdict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def observe_request(self, route: str, status: int) -> None:
        with self._lock:
            self.requests[(route, status)] += 1

    def observe_completion(self, model: str, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            counts = self.latency[model]
            counts[next((i for i, bound in enumerate(LATENCY_BUCKETS) if seconds <= bound), len(LATENCY_BUCKETS))] += 1
            self.latency_sum[model] += seconds
            self.tokens[(model, "prompt")] += prompt_tokens
            self.tokens[(model, "completion")] += completion_tokens
            self.generation_seconds[model] += seconds

    def render(self) -> str:
        with self._lock:
            lines = _header("tunewright_requests_total", "counter", "HTTP requests by route and status.")
            lines += [f'tunewright_requests_total{{route="{r}",status="{s}"}} {n}'
                      for (r, s), n in sorted(self.requests.items())]
            lines += _header("tunewright_request_latency_seconds", "histogram",
                             "Time from request to last token, by model.")
            for model, counts in sorted(self.latency.items()):
                cumulative = 0
                for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
                    cumulative += count
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    lines.append(f'tunewright_request_latency_seconds_bucket{{model="{model}",le="{le}"}} {cumulative}')
                lines.append(f'tunewright_request_latency_seconds_sum{{model="{model}"}} {self.latency_sum[model]:.6f}')
                lines.append(f'tunewright_request_latency_seconds_count{{model="{model}"}} {cumulative}')
            lines += _header("tunewright_tokens_total", "counter", "Prompt and completion tokens by model.")
            lines += [f'tunewright_tokens_total{{model="{m}",kind="{k}"}} {n}'
                      for (m, k), n in sorted(self.tokens.items())]
            lines += _header("tunewright_tokens_per_second", "gauge",
                             "Completion tokens per second of request time, by model (adapter).")
            for model, seconds in sorted(self.generation_seconds.items()):
                rate = self.tokens[(model, "completion")] / seconds if seconds > 0 else 0.0
                lines.append(f'tunewright_tokens_per_second{{model="{model}"}} {rate:.3f}')
            lines += _header("tunewright_queue_depth", "gauge", "Requests waiting or running.")
            lines.append(f"tunewright_queue_depth {self.queue_depth()}")
            prefixes = self.prefix_stats()
            lines += _header("tunewright_prefix_cache_hits_total", "counter",
                             "Prompt passes that started from a cached shared system prompt.")
            lines.append(f"tunewright_prefix_cache_hits_total {prefixes.hits}")
            lines += _header("tunewright_prefix_cache_misses_total", "counter",
                             "Prompts opening with a shared system prompt that was not cached.")
            lines.append(f"tunewright_prefix_cache_misses_total {prefixes.misses}")
            lines += _header("tunewright_prefix_cache_bytes", "gauge",
                             "Bytes of key/value states the prefix cache holds.")
            lines.append(f"tunewright_prefix_cache_bytes {prefixes.bytes}")
            lines += _header("tunewright_uptime_seconds", "gauge", "Seconds since the server started.")
            lines.append(f"tunewright_uptime_seconds {time.monotonic() - self.started:.3f}")
        return "\n".join(lines) + "\n"


def _header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
