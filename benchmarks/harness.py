"""Timing, agreement checks, statistics and the result model shared by every scenario."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import connections

from benchmarks.database import BENCH_ALIAS

NAIVE, REPOSITORY, RAW = "naive", "repository", "raw"


class VariantMismatchError(AssertionError):
    """Two variants of one scenario returned different results for the same input."""


class QueryCounter:
    """Count statements: Django ones on the given aliases, raw ones through `raw_count`."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


class RawCounter:
    """Wrap a psycopg connection so that its statements can be counted during checks."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.count = 0
        self.counting = False

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = True) -> Any:
        if self.counting:
            self.count += 1
        return self.conn.execute(query, params, prepare=prepare)

    def cursor(self) -> Any:
        return self.conn.cursor()

    def transaction(self) -> Any:
        return self.conn.transaction()


@dataclass
class Variant:
    """One way of doing a scenario's work.

    `op(item)` does one operation on one input; `normalize(result)` turns its result into
    something comparable with the other variants' results (`None` skips the comparison).
    `repeat` is how many operations per round (slow variants do fewer).
    """

    name: str
    op: Callable[[Any], Any]
    normalize: Callable[[Any], Any] | None = None
    repeat: int | None = None
    raw: RawCounter | None = None
    aliases: tuple[str, ...] = (BENCH_ALIAS,)
    #: The reference every other variant is compared with (raw by default).
    label: str = ""
    unit_items: int = 1  # rows (or orders) per operation, for throughput

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass
class VariantResult:
    name: str
    samples_ms: list[float] = field(default_factory=list)
    queries_per_op: float | None = None
    unit_items: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    #: Items per second measured directly (throughput runs), instead of from the median.
    rate: float | None = None

    @property
    def median_ms(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p95_ms(self) -> float:
        return percentile(self.samples_ms, 95)

    @property
    def throughput(self) -> float | None:
        """Items per second: measured, or at the median when an operation handles several."""
        if self.rate is not None:
            return self.rate
        if self.unit_items <= 1 or not self.samples_ms:
            return None
        return self.unit_items / (self.median_ms / 1000)

    def as_dict(self) -> dict[str, Any]:
        data = {
            "median_ms": round(self.median_ms, 4) if self.samples_ms else None,
            "p95_ms": round(self.p95_ms, 4) if self.samples_ms else None,
            "mean_ms": round(sum(self.samples_ms) / len(self.samples_ms), 4)
            if self.samples_ms
            else None,
            "samples": len(self.samples_ms),
            "queries_per_op": self.queries_per_op,
            "items_per_op": self.unit_items,
            "items_per_s": round(self.throughput, 1) if self.throughput else None,
        }
        data.update(self.extra)
        return data


@dataclass
class Target:
    description: str
    value: float | None
    threshold: float
    comparison: str  # "<=" or ">="
    detail: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return (
            self.value <= self.threshold
            if self.comparison == "<="
            else self.value >= self.threshold
        )


@dataclass
class ScenarioResult:
    name: str
    title: str
    params: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, VariantResult] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: Set when the scenario could not be measured (its variants disagreed).
    error: str | None = None

    def ratio(self, a: str, b: str) -> float | None:
        """Cost of variant `a` over that of `b`: median time per item (or 1 / items per s)."""
        va, vb = self.variants.get(a), self.variants.get(b)
        if not va or not vb:
            return None
        if va.rate is not None and vb.rate is not None:
            return vb.rate / va.rate if va.rate else None
        if not va.samples_ms or not vb.samples_ms or vb.median_ms == 0:
            return None
        return (va.median_ms / va.unit_items) / (vb.median_ms / vb.unit_items)

    def as_dict(self) -> dict[str, Any]:
        variants = {}
        order = {NAIVE: 0, REPOSITORY: 1, RAW: 3}
        ranked = sorted(self.variants.items(), key=lambda kv: order.get(kv[0], 2))
        for name, result in ranked:
            data = result.as_dict()
            data["ratio_to_naive"] = _round(self.ratio(name, NAIVE))
            data["ratio_to_raw"] = _round(self.ratio(name, RAW))
            variants[name] = data
        return {
            "title": self.title,
            "params": self.params,
            "seconds": round(self.seconds, 1),
            "variants": variants,
            "targets": [
                {**asdict(t), "value": _round(t.value), "met": t.met} for t in self.targets
            ],
            "extra": self.extra,
            "notes": self.notes,
            "error": self.error,
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def percentile(samples: Sequence[float], pct: float) -> float:
    """Return the `pct` percentile by linear interpolation (50 = median)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def check_agreement(
    variants: Sequence[Variant],
    items: Iterable[Any],
    results: dict[str, VariantResult],
    *,
    reference: str | None = None,
) -> None:
    """Run every variant once per item, compare normalized results, record queries/op."""
    items = list(items)
    outputs: dict[str, list[Any]] = {}
    for variant in variants:
        counter = QueryCounter()
        wrappers = [connections[alias].execute_wrapper(counter) for alias in variant.aliases]
        if variant.raw is not None:
            variant.raw.count = 0
            variant.raw.counting = True
        for wrapper in wrappers:
            wrapper.__enter__()
        try:
            outputs[variant.name] = [variant.op(item) for item in items]
        finally:
            for wrapper in reversed(wrappers):
                wrapper.__exit__(None, None, None)
            if variant.raw is not None:
                variant.raw.counting = False
        queries = counter.count + (variant.raw.count if variant.raw is not None else 0)
        results.setdefault(variant.name, VariantResult(variant.name, unit_items=variant.unit_items))
        results[variant.name].queries_per_op = round(queries / max(len(items), 1), 2)
    comparable = [v for v in variants if v.normalize is not None]
    if not comparable:
        return
    ref = next((v for v in comparable if v.name == (reference or RAW)), comparable[0])
    assert ref.normalize is not None
    expected = [ref.normalize(out) for out in outputs[ref.name]]
    for variant in comparable:
        if variant is ref:
            continue
        assert variant.normalize is not None
        got = [variant.normalize(out) for out in outputs[variant.name]]
        for index, (want, have) in enumerate(zip(expected, got, strict=True)):
            if want != have:
                raise VariantMismatchError(
                    f"{variant.name} disagrees with {ref.name} on input #{index} "
                    f"({items[index]!r}):\n  {ref.name}: {_short(want)}\n"
                    f"  {variant.name}: {_short(have)}"
                )


def _short(value: Any, limit: int = 600) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def measure_interleaved(
    variants: Sequence[Variant],
    inputs_for_round: Callable[[int], Sequence[Any]],
    *,
    rounds: int,
    warmup: int,
    results: dict[str, VariantResult],
    tick: Callable[[], None] | None = None,
    before_op: Callable[[Variant], None] | None = None,
) -> None:
    """Time every variant round-robin: each round runs all variants on the same inputs.

    The starting variant rotates from round to round so none always runs first (caches,
    CPU frequency). Warm-up rounds are run and discarded.
    """
    for round_no in range(-warmup, rounds):
        items = inputs_for_round(round_no)
        shift = round_no % len(variants)
        order = list(variants[shift:]) + list(variants[:shift])
        for variant in order:
            result = results.setdefault(
                variant.name, VariantResult(variant.name, unit_items=variant.unit_items)
            )
            count = variant.repeat if variant.repeat is not None else len(items)
            for index in range(count):
                item = items[index % len(items)]
                if before_op is not None:
                    before_op(variant)
                start = time.perf_counter_ns()
                variant.op(item)
                elapsed = (time.perf_counter_ns() - start) / 1e6
                if round_no >= 0:
                    result.samples_ms.append(elapsed)
            if tick is not None:
                tick()
