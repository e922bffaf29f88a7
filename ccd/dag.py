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


def find_cycles(names: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The cycles, as [a, b, ..., z] meaning a -> b -> ... -> z -> a; [] if acyclic.

    One per strongly connected component with a cycle (a self-loop is one too), so no cycle
    goes unreported, though not every way round it is listed: the shortest way from the
    component's first node in `names` back to itself. Linear: Tarjan's algorithm, iterative
    (a 50,000-node chain must not hit the recursion limit), then a breadth-first search
    inside each component.
    """
    children = children_of(names, edges)
    component = _cyclic_components(names, children)
    cycles: list[list[str]] = []
    seen: set[int] = set()
    for name in names:
        number = component.get(name)
        if number is not None and number not in seen:
            seen.add(number)
            cycles.append(_shortest_cycle(name, children, component))
    return cycles


def _cyclic_components(names: Sequence[str], children: Mapping[str, Sequence[str]]
                       ) -> dict[str, int]:
    """Tarjan's strongly connected components, those with a cycle: node -> component."""
    done = len(names)  # the index of a node whose component is known: it lowers nothing
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []  # visited nodes whose component is not known yet
    component: dict[str, int] = {}
    for root in names:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        path = [(root, iter(children[root]))]  # the DFS path, each with its unseen children
        while path:
            node, unseen = path[-1]
            for child in unseen:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    path.append((child, iter(children[child])))
                    break
                if index[child] < low[node]:
                    low[node] = index[child]
            else:
                path.pop()
                if path and low[node] < low[path[-1][0]]:
                    low[path[-1][0]] = low[node]
                if low[node] == index[node]:  # node is its component's root: pop the component
                    cyclic = stack[-1] != node or node in children[node]  # 2+ nodes, or a self-loop
                    while True:
                        member = stack.pop()
                        index[member] = done
                        if cyclic:
                            component[member] = low[node]
                        if member == node:
                            break
    return component


def _shortest_cycle(start: str, children: Mapping[str, Sequence[str]],
                    component: Mapping[str, int]) -> list[str]:
    """The shortest cycle through `start` within its component (which has one)."""
    parent = {start: start}
    queue = [start]
    for node in queue:  # breadth first: the list grows while it is walked
        for child in children[node]:
            if child == start:
                cycle = [node]
                while cycle[-1] != start:
                    cycle.append(parent[cycle[-1]])
                return cycle[::-1]
            if child not in parent and component.get(child) == component[start]:
                parent[child] = node
                queue.append(child)
    raise AssertionError(f"{start!r} is in a component with a cycle, yet on none")


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
