"""Topological order, cycles and descendants."""

from __future__ import annotations

import itertools

from ccd import dag


def test_topological_order_keeps_file_order_among_ready_jobs() -> None:
    names = ["end", "b", "a", "start"]
    edges = [("start", "a"), ("start", "b"), ("a", "end"), ("b", "end")]
    assert dag.topological_order(names, edges) == ["start", "b", "a", "end"]


def test_find_cycles_returns_each_cycle_as_a_path() -> None:
    assert dag.find_cycles(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a")]) == \
        [["a", "b", "c"]]
    assert dag.find_cycles(["a", "b"], [("a", "b")]) == []


def test_find_cycles_reports_one_cycle_per_strongly_connected_component() -> None:
    names = ["a", "b", "c", "d", "e", "f", "g"]
    edges = [("a", "b"), ("b", "a"), ("c", "c"), ("d", "e"), ("e", "f"), ("f", "d"),
             ("f", "g"), ("b", "d")]
    assert dag.find_cycles(names, edges) == [["a", "b"], ["c"], ["d", "e", "f"]]


def test_a_cycle_starts_at_its_first_node_in_file_order_and_takes_the_shortest_way_back() -> None:
    names = ["a", "b", "c"]
    edges = [("b", "c"), ("c", "a"), ("a", "b"), ("b", "a")]
    assert dag.find_cycles(names, edges) == [["a", "b"]]


def test_long_chains_do_not_hit_the_recursion_limit() -> None:
    names = [f"j{i}" for i in range(50_000)]
    edges = list(itertools.pairwise(names))
    assert dag.find_cycles(names, edges) == []
    assert dag.topological_order(names, edges) == names
    assert dag.find_cycles(names, [*edges, (names[-1], names[0])]) == [names]


def test_descendants_are_everything_downstream() -> None:
    children = dag.children_of("abcd", [("a", "b"), ("b", "c"), ("a", "d")])
    assert sorted(dag.descendants("a", children)) == ["b", "c", "d"]
    assert dag.descendants("c", children) == []
