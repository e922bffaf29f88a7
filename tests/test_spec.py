"""Workflow files: the paper's format, cloudmesh-cc's files, and every error with its place."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import write

from ccd import export
from ccd.errors import SpecError
from ccd.spec import load_spec


def errors_of(path: Path) -> list[str]:
    with pytest.raises(SpecError) as e:
        load_spec(path)
    return [str(p) for p in e.value.problems]


PAPER_FIGURE_2 = """\
workflow:
  nodes:
    start:
      name: start
    fetch-data:
      name: fetch-data
      user: gregor
      host: localhost
      kind: local
      status: ready
      label: '{name}\\nprogress={progress}'
      script: test-fetch-data.sh
    compute:
      name: compute
      user: gregor
      host: localhost
      kind: local
      status: ready
      label: '{name}\\nprogress={progress}'
      script: test-compute.sh
    end:
      name: end
  dependencies:
    - start,fetch-data,compute,end
"""


def test_papers_figure_2_loads_with_joins_and_a_chain(tmp_path: Path) -> None:
    for script in ("test-fetch-data.sh", "test-compute.sh"):
        write(tmp_path / script, "echo hi\n")
    spec, warnings = load_spec(write(tmp_path / "wf.yaml", PAPER_FIGURE_2))
    assert list(spec.jobs) == ["start", "fetch-data", "compute", "end"]
    assert spec.edges == (("start", "fetch-data"), ("fetch-data", "compute"), ("compute", "end"))
    assert spec.jobs["start"].is_join and not spec.jobs["compute"].is_join
    assert spec.jobs["fetch-data"].user == "gregor"
    assert spec.name == "wf" and warnings == []


def test_cloudmesh_example_with_dt_colors_and_no_names_loads_unchanged(tmp_path: Path) -> None:
    path = write(tmp_path / "workflow-example.yaml", """\
        workflow:
          nodes:
            start:
              label: 'start\\nCreated={created.%Y/%m/%d, %H--%M--%S}\\nNow={now.%Y/%m/%d}'
              kind: local
              user: grey
              host: local
              status: ready
              exec: 'echo hello'
              shape: invhouse
              style: ''
            fetch-data:
              label: '{name}\\nProgress={progress}\\nStart={tstart.%H--%M}\\nJob Time={dt.}'
              kind: local
              exec: 'echo hello'
              name: fetch-data
          dependencies:
              - start,fetch-data

        colors:
          status:
            ready: white
            undefined: '#DBFF33'
            done: '#CCFFCC'
        """)
    spec, _ = load_spec(path)
    assert spec.jobs["start"].exec == "echo hello" and spec.jobs["start"].style == ""
    assert spec.colors == {"ready": "white", "undefined": "#DBFF33", "done": "#CCFFCC"}


def test_empty_dependencies_mapping_and_fields_cloudmesh_saves_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "mnist.yaml", """\
        workflow:
          nodes:
            start: {label: start, kind: local, exec: echo start, number: 0, format: start}
            end: {label: stop, kind: local, exec: echo end}
          dependencies: {}
        """)
    spec, warnings = load_spec(path)
    assert spec.edges == () and warnings == []


def test_cloudmesh_saved_edges_mapping_is_read_as_dependencies(tmp_path: Path) -> None:
    path = write(tmp_path / "saved.yaml", """\
        workflow:
          nodes: {a: {exec: 'true'}, b: {exec: 'true'}}
          dependencies:
            a-b: {source: a, destination: b, name: a-b}
        """)
    assert load_spec(path)[0].edges == (("a", "b"),)


def test_parallel_branches_are_several_chains(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", """\
        workflow:
          nodes: {start: , a: {exec: 'true'}, b: {exec: 'true'}, c: {exec: 'true'}, end: }
          dependencies:
            - start,a,end
            - start, b ,end
            - start,c,end
        """)
    spec, _ = load_spec(path)
    assert set(spec.edges) == {("start", x) for x in "abc"} | {(x, "end") for x in "abc"}


def test_unknown_field_is_a_warning_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path / "w.yaml", """\
        workflow:
          nodes:
            a:
              exce: 'echo typo'
          dependencies: []
        """)
    _, warnings = load_spec(path)
    assert [str(w) for w in warnings] == [
        f"{path}:4:7: warning: unknown field 'exce' of node 'a' is ignored (did you mean 'exec'?)"]


def test_every_error_is_reported_at_once_with_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", """\
        workflow:
          nodes:
            a:
              name: b
              kind: cloud
              script: missing.sh
              progress: lots
            a:
              exec: 'true'
            "../evil":
              exec: 'true'
            c:
              exec: 'true'
              timeout: -1
              label: '{name} {bogus}'
          dependencies:
            - a,nope,c
            - 42
        """)
    f = str(path)
    problems = errors_of(path)
    assert len(problems) == 10
    for problem, expected in zip(problems, [
        f"{f}:4:13: name 'b' differs from its key 'a'",
        f"{f}:5:13: unknown kind 'cloud'; expected one of local, ssh, slurm, lsf, wsl",
        f"{f}:6:15: script file not found: {tmp_path / 'missing.sh'}",
        f"{f}:7:17: progress must be an integer from 0 to 100, not 'lots'",
        f"{f}:8:5: duplicate node 'a' (first at line 3)",
        f"{f}:10:5: node name '../evil' is not safe as a file name: use letters, digits "
        "and . _ - + (at most 128, not starting with . or -)",
        f"{f}:14:16: timeout (seconds) must be a number >= 0.001, not '-1'",
        f"{f}:15:22: label: unknown field 'bogus'; fields are: name, progress",
        f"{f}:17:9: unknown node 'nope' in dependency",
        f"{f}:18:7: unknown node '42' in dependency",
    ], strict=True):
        assert problem.startswith(expected)


def test_cycle_is_printed_as_a_path_at_the_chain_that_closes_it(tmp_path: Path) -> None:
    path = write(tmp_path / "cycle.yaml", """\
        workflow:
          nodes: {a: {exec: 'true'}, b: {exec: 'true'}, c: {exec: 'true'}, d: {exec: 'true'}}
          dependencies:
            - d,a
            - a,b,c
            - c,a
        """)
    assert errors_of(path) == [f"{path}:6:7: dependency cycle: a -> b -> c -> a"]


def test_the_path_of_a_cycle_ends_with_the_chain_that_closes_it(tmp_path: Path) -> None:
    path = write(tmp_path / "cycle.yaml", """\
        workflow:
          nodes: {a: , b: , c: }
          dependencies:
            - b,c
            - c,a
            - a,b
        """)
    assert errors_of(path) == [f"{path}:6:7: dependency cycle: b -> c -> a -> b"]


def test_every_cycle_is_reported_not_only_the_first(tmp_path: Path) -> None:
    path = write(tmp_path / "cycles.yaml", """\
        workflow:
          nodes: {a: , b: , c: , d: , e: }
          dependencies:
            - a,b,a
            - c,d,e,d
            - c,c
        """)
    assert errors_of(path) == [
        f"{path}:4:7: dependency cycle: a -> b -> a",
        f"{path}:5:7: dependency cycle: d -> e -> d",
        f"{path}:6:7: dependency cycle: c -> c",
    ]


def test_a_job_depending_on_itself_is_a_cycle(tmp_path: Path) -> None:
    path = write(tmp_path / "self.yaml", """\
        workflow:
          nodes: {a: {exec: 'true'}}
          dependencies: ["a,a"]
        """)
    assert errors_of(path) == [f"{path}:3:18: dependency cycle: a -> a"]


@pytest.mark.parametrize(("field", "value", "type_"), [
    ("exec", "42", "integer"),
    ("exec", "true", "boolean"),
    ("exec", "FALSE", "boolean"),
    ("label", "1.5", "float"),
    ("host", "12", "integer"),
    ("user", "0x1F", "integer"),
    ("script", "-.inf", "float"),
    ("cwd", "1e3", "float"),
])
def test_a_string_field_given_a_number_or_a_boolean_is_an_error_naming_both(
        tmp_path: Path, field: str, value: str, type_: str) -> None:
    path = write(tmp_path / "tests.yaml", f"""\
        workflow:
          nodes:
            a:
              {field}: {value}
        """)
    col = 7 + len(field) + 2
    assert errors_of(path) == [f"{path}:4:{col}: {field} must be a string, not the {type_} "
                               f"{value} (quote it if you mean the text: '{value}')"]


def test_names_kinds_env_values_and_colours_must_be_strings_too(tmp_path: Path) -> None:
    path = write(tmp_path / "w.yaml", """\
        workflow:
          nodes:
            "7":
              name: 7
              kind: 1
              env: {THREADS: 4}
        colors:
          status: {done: 0}
        """)
    assert errors_of(path) == [
        f"{path}:{where}: {what} must be a string, not the integer {n} "
        f"(quote it if you mean the text: '{n}')"
        for where, what, n in [("4:13", "name", 7), ("5:13", "kind", 1),
                               ("6:22", "env.THREADS", 4), ("8:18", "colors.status.done", 0)]
    ]


def test_quoted_values_and_words_yaml_1_2_reads_as_text_are_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "w.yaml", """\
        workflow:
          nodes:
            a:
              exec: '42'
              label: "1.5"
              host: 127.0.0.1
              user: yes
              shape: 1_000
              style: 12:30
              cwd: .5.
        """)
    a = load_spec(path)[0].jobs["a"]
    assert (a.exec, a.label, a.host, a.user, a.shape, a.style, a.cwd) == \
        ("42", "1.5", "127.0.0.1", "yes", "1_000", "12:30", ".5.")


@pytest.mark.parametrize(("value", "described"), [
    ('"a,b"', "the string 'a,b'"),
    ("a,b", "the string 'a,b'"),
    ("42", "the integer 42"),
])
def test_dependencies_written_as_one_string_is_an_error_asking_for_a_list(
        tmp_path: Path, value: str, described: str) -> None:
    path = write(tmp_path / "w.yaml", f"""\
        workflow:
          nodes: {{a: , b: }}
          dependencies: {value}
        """)
    assert errors_of(path) == [f"{path}:3:17: dependencies must be a list of chains like "
                               f"`- a,b,c`, not {described}"]


def test_the_other_batch_systems_options_are_a_warning_and_ignored(tmp_path: Path) -> None:
    path = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            a: {kind: lsf, exec: 'true', sbatch: [--exclusive], bsub: [-x]}
            b: {kind: slurm, exec: 'true', bsub: [-x]}
        """)
    spec, warnings = load_spec(path)
    assert [str(w) for w in warnings] == [
        f"{path}:3:34: warning: sbatch is for kind slurm; node 'a' is kind 'lsf': ignored "
        "(its options are `bsub:`)",
        f"{path}:4:36: warning: bsub is for kind lsf; node 'b' is kind 'slurm': ignored "
        "(its options are `sbatch:`)"]
    assert spec.jobs["a"].batch_options == ("-x",)
    assert spec.jobs["b"].batch_options == ()


def test_outputs_and_files_are_lists_of_relative_paths_and_globs(tmp_path: Path) -> None:
    path = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            train:
              exec: python train.py
              outputs:
                - model.pt
                - 'plots/*.png'
                - ./logs/**/*.txt
            end:
          dependencies:
            - train,end
        files:
          - train.py
          - data/*.csv
        """)
    spec, warnings = load_spec(path)
    assert spec.jobs["train"].outputs == ("model.pt", "plots/*.png", "./logs/**/*.txt")
    assert spec.jobs["end"].outputs == ()
    assert spec.files == ("train.py", "data/*.csv")
    assert warnings == []


def test_bad_outputs_and_files_are_errors_at_their_entries(tmp_path: Path) -> None:
    path = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            a:
              exec: 'true'
              outputs:
                - /tmp/result.csv
                - ../up.txt
                - data/../../x
                - 42
                - ''
                -
                - [nested]
        files:
          - /etc/passwd
          - lib/..
          - ~/data
        """)
    assert errors_of(path) == [f"{path}:{problem}" for problem in [
        "6:11: outputs: '/tmp/result.csv' is an absolute path; write it relative to the "
        "run's working copy",
        "7:11: outputs: '../up.txt' leaves the run's working copy ('..' is not allowed)",
        "8:11: outputs: 'data/../../x' leaves the run's working copy ('..' is not allowed)",
        "9:11: outputs: an entry must be a string, not the integer 42 "
        "(quote it if you mean the text: '42')",
        "10:11: outputs: an entry cannot be empty",
        "11:10: outputs: an entry cannot be empty",
        "12:11: outputs: an entry must be a string, not a list",
        "14:5: files: '/etc/passwd' is an absolute path; write it relative to the workflow "
        "file's directory",
        "15:5: files: 'lib/..' leaves the workflow file's directory ('..' is not allowed)",
        "16:5: files: '~/data' is an absolute path; write it relative to the workflow file's "
        "directory",
    ]]


@pytest.mark.parametrize(("text", "message"), [
    ("workflow:\n  nodes:\n    a: {outputs: out.csv}\n",
     "3:18: outputs must be a list of relative paths or glob patterns like `- results/*.csv`, "
     "not the string 'out.csv'"),
    ("workflow: {nodes: {a: }}\nfiles: {data: x}\n",
     "2:8: files must be a list of relative paths or glob patterns like `- results/*.csv`, "
     "not a mapping"),
])
def test_outputs_and_files_must_be_lists(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "wf.yaml", text)
    assert errors_of(path) == [f"{path}:{message}"]


def test_outputs_and_files_survive_save_with_state(tmp_path: Path) -> None:
    path = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            a: {exec: 'true', status: ready, outputs: [out/*.txt, 'a b.csv']}
            b: {exec: 'true', status: ready}
          dependencies: ["a,b"]
        files: [lib.py, 'data/*.csv']
        """)
    spec, _ = load_spec(path)
    text = export.with_state(spec)
    again, _ = load_spec(path, text.encode())
    assert again.jobs["a"].outputs == ("out/*.txt", "a b.csv")
    assert again.files == ("lib.py", "data/*.csv")
    assert again == spec and export.with_state(again) == text


@pytest.mark.parametrize(("text", "message"), [
    ("", "1:1: empty file: expected `workflow:`"),
    ("- a\n- b\n", "1:1: the file must be a mapping, not a list"),
    ("colors: {}\n", "1:1: missing `workflow:` (with `nodes:` and `dependencies:`)"),
    ("workflow:\n  dependencies: []\n", "2:3: missing `nodes:` in workflow"),
    ("workflow:\n  nodes: [a, b]\n", "2:10: workflow.nodes must be a mapping, not a list"),
    ("workflow: {nodes: {a: {exec: [1]}}}\n",
     "1:30: exec must be a string, not a list"),
    ("workflow:\n  nodes:\n    a: {exec: 'x'\n", "4:1: invalid YAML: while parsing a flow mapping "
     "did not find expected ',' or '}'"),
    ("workflow: {nodes: {a: {exec: 'x', retries: -1}}}\n",
     "1:44: retries must be an integer from 0 to 100, not '-1'"),
    ("workflow: {nodes: {'a b': {exec: 'true'}}}\n",
     "1:20: node name 'a b' is not safe as a file name"),
])
def test_malformed_files_get_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "m.yaml", text)
    problems = errors_of(path)
    assert problems[0].startswith(f"{path}:{message}")


def test_numbers_past_what_a_field_can_hold_are_errors_not_crashes(tmp_path: Path) -> None:
    digits = "9" * 5000
    path = write(tmp_path / "big.yaml", f"""\
        workflow:
          nodes:
            a: {{exec: 'true', retries: {digits}}}
            b: {{exec: 'true', timeout: 1e999}}
        """)
    assert errors_of(path) == [
        f"{path}:3:32: retries must be an integer from 0 to 100, not '{digits[:80]}'… "
        "(5,000 characters)",  # a message quotes a value, never a whole file
        f"{path}:4:32: timeout (seconds) must be a number >= 0.001, not '1e999'",
    ]


def test_ten_thousand_nodes_validate_quickly(tmp_path: Path) -> None:
    lines = ["workflow:", "  nodes:"]
    for i in range(10_000):
        lines += [f"    j{i}:", f"      name: j{i}", "      kind: local",
                  "      label: '{name}\\nprogress={progress}'", "      exec: echo hi"]
    lines += ["  dependencies:"] + [f"    - j{i},j{i + 1}" for i in range(9_999)]
    path = write(tmp_path / "big.yaml", "\n".join(lines) + "\n")
    t = time.perf_counter()
    spec, _ = load_spec(path)
    assert len(spec.jobs) == 10_000 and len(spec.edges) == 9_999
    # A generous bound that still catches an accidental quadratic step; `make bench` measures.
    assert time.perf_counter() - t < 10


def test_a_script_outside_the_workflows_directory_is_an_error_or_a_warning(
        tmp_path: Path) -> None:
    write(tmp_path / "shared.sh", "echo hi\n")
    wf = write(tmp_path / "wf" / "wf.yaml", """\
        workflow:
          nodes:
            up: {script: ../shared.sh}
        """)
    assert errors_of(wf) == [f"{wf}:3:18: script '../shared.sh' leaves the workflow's "
                             "directory, which ccd copies for each run: move it there, or "
                             "give its absolute path"]
    wf.write_text(f"workflow:\n  nodes:\n    abs: {{script: {tmp_path / 'shared.sh'}}}\n")
    _, warnings = load_spec(wf)
    assert [str(w) for w in warnings] == [
        f"{wf}:3:19: warning: script {tmp_path / 'shared.sh'} is outside the workflow's "
        "directory: it runs from there, as it is when the job starts, not from the run's copy"]


def test_each_bad_field_of_the_hosts_inventory_is_an_error_at_its_position(
        tmp_path: Path) -> None:
    path = write(tmp_path / "wf.yaml", """\
        hosts:
          a: {port: 0, max_sessions: 1, poll: 0, max_jobs: 0}
          b: {identity: keys/id, known_hosts: kh, workdir: "x\\ny", hostname: ""}
        workflow:
          nodes:
            j: {kind: ssh, host: a, exec: 'true'}
        """)
    assert errors_of(path) == [
        f"{path}:2:13: port must be an integer from 1 to 65535, not '0'",
        f"{path}:2:30: max_sessions must be an integer from 2 to 10000, not '1'",
        f"{path}:2:39: poll (seconds) must be a number from 0.1 to 3600, not '0'",
        f"{path}:2:52: max_jobs must be an integer >= 1, not '0'",
        f"{path}:3:17: identity must be an absolute path or start with ~/, not 'keys/id'",
        f"{path}:3:39: known_hosts must be an absolute path or start with ~/, not 'kh'",
        f"{path}:3:52: workdir must be a non-empty string without control characters",
        f"{path}:3:70: hostname must be a non-empty string without control characters",
    ]


def test_a_good_inventory_is_read_with_every_field(tmp_path: Path) -> None:
    path = write(tmp_path / "wf.yaml", """\
        hosts:
          gpu1: {hostname: 10.0.0.7, port: 2222, user: me, identity: ~/.ssh/id, poll: 5,
                 known_hosts: /etc/kh, workdir: /scratch/ccd, max_sessions: 20, max_jobs: 4}
        workflow:
          nodes:
            j: {kind: slurm, host: gpu1, exec: 'true'}
        """)
    spec, warnings = load_spec(path)
    assert warnings == []
    h = spec.hosts["gpu1"]
    assert (h.hostname, h.port, h.user, h.identity, h.known_hosts, h.workdir, h.max_sessions,
            h.max_jobs, h.poll) == ("10.0.0.7", 2222, "me", "~/.ssh/id", "/etc/kh",
                                    "/scratch/ccd", 20, 4, 5.0)


def test_a_script_or_venv_path_too_long_to_look_up_is_an_error_not_a_crash(
        tmp_path: Path) -> None:
    long = "a" * 300
    path = write(tmp_path / "wf.yaml", f"""\
        workflow:
          nodes:
            s: {{script: {long}.sh}}
            v: {{exec: 'true', venv: {long}}}
        """)
    assert errors_of(path) == [
        f"{path}:3:17: script path cannot be used (File name too long): "
        f"{tmp_path / (long + '.sh')}",
        f"{path}:4:29: venv {tmp_path / long} has no bin/activate"]


def test_a_trigger_is_read_and_an_unknown_one_is_an_error_with_a_suggestion(
        tmp_path: Path) -> None:
    spec, _ = load_spec(write(tmp_path / "ok.yaml", """\
        workflow:
          nodes:
            a: {exec: 'true'}
            b: {exec: 'true', trigger: all_done}
          dependencies: ['a,b']
        """))
    assert spec.jobs["a"].trigger == "all_success" and spec.jobs["b"].trigger == "all_done"
    assert "      trigger: all_done" in export.with_state(spec).splitlines()
    bad = write(tmp_path / "bad.yaml", """\
        workflow:
          nodes:
            a: {exec: 'true', trigger: all_sucess}
          dependencies: []
        """)
    assert errors_of(bad) == [
        f"{bad}:3:32: unknown trigger 'all_sucess'; expected one of all_success, all_done, "
        "any_failed, one_success (did you mean 'all_success'?)"]


def test_a_bad_when_is_an_error_at_its_place_in_the_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "when.yaml", """\
        workflow:
          nodes:
            a: {exec: 'true'}
            b: {exec: 'true', when: 'job("a").state = "done"'}
            c: {exec: 'true', when: 'job("aa").exit_code == 0'}
            d: {exec: 'true', when: 'gpu == "a100"'}
          dependencies: ['a,b', 'a,c', 'a,d']
        """)
    assert errors_of(bad) == [
        f"{bad}:4:45: when: unexpected '='",
        f"{bad}:5:35: when: no job 'aa' (did you mean 'a'?)",
        f"{bad}:6:30: when: unknown parameter 'gpu'; the node has no matrix"]


def test_repeat_needs_a_condition_and_a_bound_each_mistake_at_its_position(
        tmp_path: Path) -> None:
    path = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            a: {exec: 'true', repeat: {until: 'n >= 3'}}
            b: {exec: 'true', repeat: {until: 'n >=', max: 3}}
            c: {exec: 'true', repeat: {until: 'n > 1', max: 1001}}
            d: {exec: 'true', repeat: {until: 'n > 1', max: 3}, retries: 2}
        """)
    errors = errors_of(path)
    assert errors[0] == (f"{path}:3:31: repeat needs max: (repeat: {{until: CONDITION, "
                         "max: N}; a job never repeats without a bound)")
    assert errors[1].startswith(f"{path}:4:") and ": repeat.until: " in errors[1]
    assert errors[2] == (f"{path}:5:53: repeat.max must be an integer from 2 to 1000, "
                         "not '1001'")
    assert errors[3] == (f"{path}:6:66: node 'd' has both retries and repeat: each run of "
                         "a repeated job is one attempt; give one of them")
    assert len(errors) == 4


def test_repeat_is_read_and_saved_back(tmp_path: Path) -> None:
    from ccd.export import with_state

    path = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            a: {exec: 'true', repeat: {until: 'loss < 0.1 or n >= 5', max: 20}}
        """)
    spec, _ = load_spec(path)
    assert (spec.jobs["a"].repeat_until, spec.jobs["a"].repeat_max) == (
        "loss < 0.1 or n >= 5", 20)
    again = write(tmp_path / "again.yaml", with_state(spec))
    reread = load_spec(again)[0].jobs["a"]
    assert (reread.repeat_until, reread.repeat_max) == (spec.jobs["a"].repeat_until, 20)


def test_an_unclosed_quote_is_reported_where_it_opens_and_a_tab_as_a_tab(
        tmp_path: Path) -> None:
    quote = tmp_path / "quote.yaml"
    quote.write_text('workflow:\n  nodes:\n    a: {exec: "echo hi}\n    b: {exec: x}\n')
    assert errors_of(quote) == [
        f"{quote}:3:15: invalid YAML: a quoted string is never closed: its quote opens here"]
    tab = tmp_path / "tab.yaml"
    tab.write_text("workflow:\n  nodes:\n\ta: {exec: x}\n")
    assert errors_of(tab) == [f"{tab}:3:1: invalid YAML: a tab: YAML indents with spaces only"]


def test_warnings_are_reported_with_the_errors_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            a: {exec: 'true', colour: red}
            b: {exec: 42}
        """)
    assert errors_of(path) == [
        f"{path}:3:23: warning: unknown field 'colour' of node 'a' is ignored",
        f"{path}:4:15: exec must be a string, not the integer 42 (quote it if you mean the "
        "text: '42')"]
