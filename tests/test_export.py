"""save_with_state's YAML: what ccd writes, ccd (and any YAML reader) loads back unchanged."""

from __future__ import annotations

from pathlib import Path

from conftest import write

from ccd import export
from ccd.spec import load_spec


def test_characters_past_u_ffff_survive_a_save_and_a_load(tmp_path: Path) -> None:
    path = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            a:
              exec: echo 🚀 \\ud83d "\\\\ud83d\\\\ude00"
              label: "{name} ✓ 🚀"
              status: ready
              env: {MOOD: 😀}
              outputs: [🚀/*.txt]
          dependencies: []
        files: [数据/😀.csv]
        """)
    spec, _ = load_spec(path)
    assert spec.jobs["a"].exec == 'echo 🚀 \\ud83d "\\\\ud83d\\\\ude00"'
    again, _ = load_spec(path, export.with_state(spec).encode())
    assert again == spec
