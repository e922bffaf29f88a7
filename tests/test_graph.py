"""The DOT of a workflow run and its drawing by graphviz."""

from __future__ import annotations

import html
import re
import shutil
import warnings
from pathlib import Path

import pydot
import pytest
from conftest import require, write

from ccd.errors import GraphvizMissing
from ccd.graph import render, to_dot
from ccd.labels import RunTimes
from ccd.model import JobSpec, JobState, JobStatus, WorkflowSpec
from ccd.palette import STATE_COLORS
from ccd.spec import load_spec

NOW = 1_700_000_000.0
TRICKY = 'say "hi" <script>alert(1)</script> C:\\dir\\ end\\'


def require_dot() -> None:
    """Skip without graphviz, except under CI=true, where a missing `dot` is a failure."""
    if shutil.which("dot") is None:
        require("graphviz `dot` is not installed (make test installs it as root)")


def workflow(
    *jobs: JobSpec, edges: tuple[tuple[str, str], ...] = (), **colors: str
) -> WorkflowSpec:
    return WorkflowSpec(
        name="w",
        source=Path("/tmp/w.yaml"),
        jobs={job.name: job for job in jobs},
        edges=edges,
        colors=dict(colors),
    )


def dot_of(spec: WorkflowSpec, *statuses: JobStatus) -> str:
    return to_dot(spec, {s.name: s for s in statuses}, RunTimes(t0=NOW - 10), NOW, {}, {})


def parsed(dot: str) -> pydot.Dot:
    """The DOT text read back by pydot's parser."""
    with warnings.catch_warnings():
        # pydot's parser still calls pyparsing's camelCase API, deprecated since pyparsing
        # 3.3; that is pydot's to fix and says nothing about our DOT.
        warnings.filterwarnings("ignore", "'.*' deprecated - use", DeprecationWarning)
        graphs = pydot.graph_from_dot_data(dot)
    assert graphs is not None and len(graphs) == 1
    return graphs[0]


def nodes(dot: str) -> dict[str, pydot.Node]:
    """The nodes of a DOT text by their (unquoted) name, as a DOT parser reads them."""
    return {unquote(node.get_name()): node for node in parsed(dot).get_nodes()}


def attr(node: pydot.Node, name: str) -> str | None:
    """A node's attribute as graphviz shows it, or None if it is not set."""
    value = node.get(name)
    return None if value is None else unquote(str(value))


def unquote(quoted: str) -> str:
    """What graphviz shows for a quoted DOT string; `\\n`, `\\l`, `\\r` become newlines."""
    assert quoted[0] == quoted[-1] == '"'
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] in "nlr" else m[1], quoted[1:-1])


def test_each_job_is_a_node_in_file_order_with_its_rendered_label() -> None:
    spec = workflow(JobSpec(name="b", label="{name}:{progress}%"), JobSpec(name="a"))
    dot = dot_of(spec, JobStatus(name="b", progress=30))
    found = nodes(dot)
    assert list(found) == ["b", "a"]
    assert attr(found["b"], "label") == "b:30%"
    assert attr(found["a"], "label") == "a"


def test_edges_follow_the_workflow() -> None:
    spec = workflow(JobSpec(name="a"), JobSpec(name="b"), edges=(("a", "b"),))
    edges = parsed(dot_of(spec)).get_edges()
    assert [(unquote(str(e.get_source())), unquote(str(e.get_destination()))) for e in edges] == [
        ("a", "b")
    ]


@pytest.mark.parametrize("state", list(JobState))
def test_nodes_are_filled_with_their_state_colour(state: JobState) -> None:
    dot = dot_of(workflow(JobSpec(name="a")), JobStatus(name="a", state=state))
    node = nodes(dot)["a"]
    assert attr(node, "fillcolor") == STATE_COLORS[state.value]
    assert attr(node, "style") == "filled"


def test_cloudmesh_colours_are_kept_and_queued_has_its_own() -> None:
    assert STATE_COLORS == {
        "ready": "white",
        "queued": "#F2E6FF",
        "done": "#CCFFCC",
        "failed": "#FFCCCC",
        "running": "#CCE5FF",
        "skipped": "#EEEEEE",
        "cancelled": "#FFE5CC",
    }


def test_job_without_status_is_ready() -> None:
    node = nodes(dot_of(workflow(JobSpec(name="a"))))["a"]
    assert attr(node, "fillcolor") == "white"


def test_workflow_colors_override_the_state_colours() -> None:
    spec = workflow(JobSpec(name="a"), JobSpec(name="b"), done="green")
    dot = dot_of(spec, JobStatus(name="a", state=JobState.DONE))
    found = nodes(dot)
    assert attr(found["a"], "fillcolor") == "green"
    assert attr(found["b"], "fillcolor") == "white"  # the others keep the defaults


@pytest.mark.parametrize(
    ("style", "expected"), [(None, "filled"), ("", "filled"), ("filled,rounded", "filled,rounded")]
)
def test_style_defaults_to_filled_and_empty_means_filled(style: str | None, expected: str) -> None:
    node = nodes(dot_of(workflow(JobSpec(name="a", style=style))))["a"]
    assert attr(node, "style") == expected


def test_shape_is_set_only_when_the_job_gives_one() -> None:
    spec = workflow(JobSpec(name="a", shape="diamond"), JobSpec(name="b"))
    found = nodes(dot_of(spec))
    assert attr(found["a"], "shape") == "diamond"
    assert attr(found["b"], "shape") is None  # graphviz's default, an ellipse


def test_backslash_n_in_a_label_is_a_line_break() -> None:
    spec = workflow(JobSpec(name="a", label=r"{name}\nline two"), JobSpec(name="b", label="x\ny"))
    found = nodes(dot_of(spec))
    assert attr(found["a"], "label") == "a\nline two"
    assert attr(found["b"], "label") == "x\ny"  # a real newline too


def test_label_with_quotes_html_and_backslashes_survives() -> None:
    dot = dot_of(workflow(JobSpec(name="a", label=TRICKY)))
    assert attr(nodes(dot)["a"], "label") == TRICKY


@pytest.mark.parametrize("name", ["node", "graph", "edge", "a:b", "<b>", 'we"ird\\', "two words"])
def test_awkward_job_names_stay_one_node(name: str) -> None:
    spec = workflow(JobSpec(name=name), JobSpec(name="z"), edges=((name, "z"),))
    drawn = parsed(dot_of(spec))
    assert len(drawn.get_nodes()) == 2
    [edge] = drawn.get_edges()
    assert edge.get_source() == drawn.get_nodes()[0].get_name()


def test_workflow_name_is_quoted() -> None:
    spec = WorkflowSpec(name='my "flow" {1}', source=Path("/tmp/w.yaml"), jobs={}, edges=())
    assert unquote(str(parsed(dot_of(spec)).get_name())) == 'my "flow" {1}'


def test_render_draws_svg_with_the_labels_as_text() -> None:
    require_dot()
    spec = workflow(
        JobSpec(name="a", label=TRICKY + r"\nsecond"), JobSpec(name="b"), edges=(("a", "b"),)
    )
    spec_dot = dot_of(spec, JobStatus(name="a", state=JobState.FAILED))
    svg = render(spec_dot, "svg").decode()
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert texts == [TRICKY, "second", "b"]
    assert 'fill="#ffcccc"' in svg.lower()


def test_render_draws_png() -> None:
    require_dot()
    assert render(dot_of(workflow(JobSpec(name="a"))), "png").startswith(b"\x89PNG")


def test_render_without_dot_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(GraphvizMissing, match="apt-get install graphviz"):
        render("digraph {}", "svg")


def test_render_rejects_other_formats() -> None:
    with pytest.raises(ValueError, match="svg"):
        render("digraph {}", "pdf")


def sweep_dot(tmp_path: Path, *statuses: JobStatus) -> str:
    wf = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            prep: {exec: 'true'}
            train: {exec: 'true', matrix: {gpu: [a100, v100], run: [1, 2, 3]}}
            report: {exec: 'true', matrix: {gpu: [a100, v100]}}
            end: {exec: 'true'}
          dependencies: ['prep,train', 'train[gpu=*],report[gpu=*]', 'train,end']
        """)
    spec, _ = load_spec(wf)
    return to_dot(spec, {s.name: s for s in statuses}, RunTimes(t0=NOW - 10), NOW, {}, {})


def test_a_sweep_is_one_box_of_its_instances_with_their_count_and_states(
        tmp_path: Path) -> None:
    graph = parsed(sweep_dot(tmp_path, JobStatus("train.gpu-a100.run-1", JobState.DONE),
                             JobStatus("train.gpu-v100.run-3", JobState.FAILED)))
    boxes = {unquote(str(b.get("label"))): b for b in graph.get_subgraphs()}
    assert set(boxes) == {"train x 6\n4 ready · 1 done · 1 failed", "report x 2\n2 ready"}
    train = boxes["train x 6\n4 ready · 1 done · 1 failed"]
    assert sorted(unquote(n.get_name()) for n in train.get_nodes()) == [
        f"train.gpu-{g}.run-{r}" for g in ("a100", "v100") for r in (1, 2, 3)]
    # In the box, an instance says only its parameters: the box says the node.
    assert {attr(n, "label") for n in train.get_nodes()} >= {"gpu=a100 run=1"}


def test_a_link_to_or_from_every_instance_is_one_edge_to_the_box_matched_ones_stay(
        tmp_path: Path) -> None:
    graph = parsed(sweep_dot(tmp_path))
    edges = [(str(e.get_source()).strip('"'), str(e.get_destination()).strip('"'), e.get("lhead"),
              e.get("ltail")) for e in graph.get_edges()]
    into, out = [e for e in edges if e[0] == "prep"], [e for e in edges if e[1] == "end"]
    assert len(into) == 1 and into[0][2] is not None  # fan-out: one edge into the box
    assert len(out) == 1 and out[0][3] is not None  # fan-in: one edge out of it
    matched = [e for e in edges if e[1].startswith("report.")]
    assert len(matched) == 6 and all(e[0].split(".")[1] == e[1].split(".")[1] for e in matched)
    assert graph.get("compound") == "true"
