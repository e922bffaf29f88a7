"""The DAG of a workflow: topological order, cycles, descendants, what is ready. Pure."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence


def parents_of(names: Iterable[str], edges: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Each node's direct predecessors."""
    parents: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        parents[b].append(a)
    return parents


def children_of(names: Iterable[str], edges: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Each node's direct successors."""
    children: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        children[a].append(b)
    return children


def topological_order(names: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[str]:
    """Kahn's order, stable: among ready nodes, file order wins. Nodes on a cycle are left out."""
    edges = list(edges)
    children = children_of(names, edges)
    indegree = {n: 0 for n in names}
    for _, b in edges:
        indegree[b] += 1
    rank = {n: i for i, n in enumerate(names)}


    heap = [(rank[n], n) for n in names if indegree[n] == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        _, n = heapq.heappop(heap)
        order.append(n)
        for child in children[n]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(heap, (rank[child], child))
    return order


def find_cycle(names: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[str] | None:
    """One cycle as [a, b, ..., z] meaning a -> b -> ... -> z -> a; None if acyclic."""
    children = children_of(names, edges)
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(names, WHITE)
    for root in names:
        if colour[root] != WHITE:
            continue
        # Iterative DFS: 10,000-node chains must not hit the recursion limit.
        path: list[str] = [root]
        iters = [iter(children[root])]
        colour[root] = GREY
        while iters:
            child = next(iters[-1], None)
            if child is None:
                colour[path.pop()] = BLACK
                iters.pop()
            elif colour[child] == GREY:
                return path[path.index(child):]
            elif colour[child] == WHITE:
                colour[child] = GREY
                path.append(child)
                iters.append(iter(children[child]))
    return None


def descendants(name: str, children: Mapping[str, Sequence[str]]) -> list[str]:
    """Every node reachable from `name`, not including it, in discovery order."""
    seen: dict[str, None] = {}
    stack = list(children[name])
    while stack:
        n = stack.pop()
        if n not in seen:
            seen[n] = None
            stack.extend(children[n])
    return list(seen)
