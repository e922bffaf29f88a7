"""Topological order, cycles and descendants."""

from __future__ import annotations

import itertools

from ccd import dag


def test_topological_order_keeps_file_order_among_ready_jobs() -> None:
    names = ["end", "b", "a", "start"]
    edges = [("start", "a"), ("start", "b"), ("a", "end"), ("b", "end")]
    assert dag.topological_order(names, edges) == ["start", "b", "a", "end"]


def test_find_cycle_returns_the_cycle_as_a_path() -> None:
    assert dag.find_cycle(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a")]) == \
        ["a", "b", "c"]
    assert dag.find_cycle(["a", "b"], [("a", "b")]) is None


def test_long_chains_do_not_hit_the_recursion_limit() -> None:
    names = [f"j{i}" for i in range(50_000)]
    edges = list(itertools.pairwise(names))
    assert dag.find_cycle(names, edges) is None
    assert dag.topological_order(names, edges) == names


def test_descendants_are_everything_downstream() -> None:
    children = dag.children_of("abcd", [("a", "b"), ("b", "c"), ("a", "d")])
    assert sorted(dag.descendants("a", children)) == ["b", "c", "d"]
    assert dag.descendants("c", children) == []
