"""How each state looks, everywhere: the graph's node fill (cloudmesh-cc's colours, plus ours
for the two states it lacks), and the page's border, text and bar colours. The terminal
uses the bars. The page gets this table from the daemon (GET /api/v1/meta); no copy of it
lives in CSS or JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass

from ccd.model import JobState


@dataclass(frozen=True, slots=True)
class Look:
    fill: str  # the graph's node and the page's badge (the workflow's `colors:` may override)
    line: str  # borders
    ink: str  # text on the fill
    bar: str  # progress bars, count bars, the terminal


LOOKS: dict[JobState, Look] = {
    JobState.READY: Look("white", "#98a2ae", "#38414d", "#98a2ae"),
    JobState.QUEUED: Look("#F2E6FF", "#a98bd6", "#4a2a7a", "#8a63c9"),
    JobState.RUNNING: Look("#CCE5FF", "#6aa4e4", "#0b4788", "#2f78d4"),
    JobState.DONE: Look("#CCFFCC", "#5fb35f", "#1b5a1e", "#36a150"),
    JobState.FAILED: Look("#FFCCCC", "#de6b6b", "#8c1c1c", "#d43d3d"),
    JobState.SKIPPED: Look("#EEEEEE", "#b1b1b1", "#474747", "#a5a5a5"),
    JobState.CANCELLED: Look("#FFE5CC", "#e59f57", "#763f00", "#e0852a"),
}

STATE_COLORS: dict[str, str] = {state.value: look.fill for state, look in LOOKS.items()}
