"""Label templates (the paper's Table 3): what check() reports and what render() shows."""

from __future__ import annotations

import random
import time

import pytest

from ccd.labels import RunTimes, check, render, substitute
from ccd.model import JobSpec, JobState, JobStatus

CREATED = 1_700_000_000.0  # 2023-11-14, fixed so results do not depend on the clock
T0 = CREATED + 60
NOW = T0 + 3_723.0  # 1 h 2 min 3 s after the run started
POINT = "%m/%d/%Y, %H:%M:%S"

TIMES = RunTimes(created=CREATED, t0=T0)
JOB = JobSpec(name="fetch", user="grey", host="rivanna", script="fetch.sh", kind="ssh")


def local(seconds: float, fmt: str = POINT) -> str:
    """What a point in time looks like here; computed, because the test's zone is unknown."""
    return time.strftime(fmt, time.localtime(seconds))


def show(
    template: str | None,
    job: JobSpec = JOB,
    status: JobStatus | None = None,
    times: RunTimes = TIMES,
    now: float = NOW,
    variables: dict[str, str] | None = None,
    environ: dict[str, str] | None = None,
) -> str:
    return render(
        template,
        job,
        status or JobStatus(name=job.name),
        times,
        now,
        variables or {},
        environ or {},
    )


# --- what render shows ------------------------------------------------------------------


def test_no_label_renders_the_job_name() -> None:
    assert show(None) == "fetch"
    assert show("") == "fetch"


def test_text_without_fields_is_shown_as_written() -> None:
    assert show(r"plain\ntext") == r"plain\ntext"


def test_name_and_progress_come_from_the_job_and_its_status() -> None:
    status = JobStatus(name="fetch", progress=42)
    assert show("{name} at {progress}%", status=status) == "fetch at 42%"


def test_status_is_the_current_state_not_the_initial_one() -> None:
    job = JobSpec(name="fetch", status="ready")
    status = JobStatus(name="fetch", state=JobState.RUNNING)
    assert show("{status}", job=job, status=status) == "running"


def test_job_attributes_render_and_none_is_empty() -> None:
    assert show("{user}@{host} {kind} {script}|{exec}|{venv}") == "grey@rivanna ssh fetch.sh||"


def test_env_renders_as_key_value_pairs() -> None:
    job = JobSpec(name="fetch", env=(("A", "1"), ("B", "two")))
    assert show("{env}", job=job) == "A=1 B=two"


def test_double_dash_renders_as_colon() -> None:
    assert show("{name}--{t0.%H--%M}") == f"fetch:{local(T0, '%H:%M')}"


def test_double_dash_in_substituted_values_is_kept() -> None:
    # `--` is an escape of the template, not of the data put into it.
    assert show("{os.ARGS}", environ={"ARGS": "--verbose"}) == "--verbose"


def test_doubled_braces_are_literal_braces() -> None:
    assert show("{{name}} is {{{name}}}") == "{name} is {fetch}"


def test_time_takes_a_strftime_format_after_a_dot() -> None:
    expected = local(T0, "%Y/%m/%d, %H:%M:%S")
    assert show("{t0.%Y/%m/%d, %H--%M--%S}") == expected


@pytest.mark.parametrize("template", ["{now}", "{now.}"])
def test_time_without_format_uses_the_default(template: str) -> None:
    assert show(template) == local(NOW)


def test_points_in_time_come_from_the_run_and_the_status() -> None:
    status = JobStatus(name="fetch", tstart=T0 + 10, tend=T0 + 20, modified=T0 + 30)
    times = RunTimes(created=CREATED, t0=T0, t1=T0 + 40)
    text = show("{created}|{t0}|{t1}|{tstart}|{tend}|{modified}", status=status, times=times)
    expected = [CREATED, T0, T0 + 40, T0 + 10, T0 + 20, T0 + 30]
    assert text.split("|") == [local(t) for t in expected]


def test_cloudmesh_ccs_start_and_end_are_the_jobs_start_and_end() -> None:
    # cloudmesh-cc's own example labels say start={start.}, end={end.}.
    status = JobStatus(name="fetch", tstart=T0 + 10, tend=T0 + 20)
    text = show("start={start.}|end={end.%H--%M}|{start}", status=status)
    assert text == f"start={local(T0 + 10)}|end={local(T0 + 20, '%H:%M')}|{local(T0 + 10)}"
    assert show("{start.}|{end.}") == "N/A|N/A"


def test_a_sweep_parameter_called_start_wins_over_the_alias() -> None:
    assert check("{start}", params=("start",)) == []
    assert show(substitute("{start}-{end.}", {"start": "0.1"})) == "0.1-N/A"


def test_time_before_run_start_is_na() -> None:
    before = RunTimes(created=CREATED)
    template = "{t0}|{t1}|{dt0}|{dt1}|{tstart}|{tend}|{modified}|{dt}"
    assert show(template, times=before) == "|".join(["N/A"] * 8)


def test_duration_default_format_is_hours_minutes_seconds() -> None:
    assert show("{dt0}") == "01:02:03"


def test_duration_takes_a_format() -> None:
    assert show("{dt0.%M--%S}") == "02:03"


def test_dt0_runs_until_the_run_ends() -> None:
    ended = RunTimes(created=CREATED, t0=T0, t1=T0 + 5)
    assert show("{dt0}", times=ended, now=NOW + 1_000) == "00:00:05"


def test_dt1_is_the_length_of_an_ended_run() -> None:
    assert show("{dt1}") == "N/A"
    assert show("{dt1}", times=RunTimes(t0=T0, t1=T0 + 65)) == "00:01:05"


def test_dt_of_a_running_job_counts_up_to_now() -> None:
    status = JobStatus(name="fetch", state=JobState.RUNNING, tstart=NOW - 7)
    assert show("{dt}", status=status) == "00:00:07"


def test_dt_of_an_ended_job_is_its_run_time() -> None:
    status = JobStatus(name="fetch", state=JobState.DONE, tstart=T0, tend=T0 + 90)
    assert show("{dt}", status=status) == "00:01:30"


def test_negative_duration_from_clock_skew_shows_as_zero() -> None:
    status = JobStatus(name="fetch", state=JobState.RUNNING, tstart=NOW + 5)
    assert show("{dt}", status=status) == "00:00:00"


def test_os_reads_the_environment_and_cm_the_variables() -> None:
    text = show("{os.HOME} {cm.project}", variables={"project": "mnist"}, environ={"HOME": "/h"})
    assert text == "/h mnist"


def test_unset_variables_render_empty() -> None:
    assert show("[{os.NOPE}][{cm.nope}]") == "[][]"


def test_paper_figure_3_label() -> None:
    template = (
        r"start\nCreated={created.%Y/%m/%d, %H--%M--%S}\n"
        r"Workflow Started={t0.%Y/%m/%d, %H--%M--%S}\n"
        r"Now={now.%Y/%m/%d, %H--%M--%S}\nElapsed={dt0.%M--%S}"
    )
    fmt = "%Y/%m/%d, %H:%M:%S"
    assert check(template) == []
    assert show(template) == (
        rf"start\nCreated={local(CREATED, fmt)}\nWorkflow Started={local(T0, fmt)}\n"
        rf"Now={local(NOW, fmt)}\nElapsed=02:03"
    )


# --- what check reports -----------------------------------------------------------------


def test_every_documented_field_is_accepted() -> None:
    fields = [
        "name", "progress", "status", "user", "host", "kind", "script", "exec", "venv",
        "shape", "style", "label", "now", "created", "t0", "t1", "dt0", "dt1", "tstart",
        "tend", "modified", "dt", "t0.%Y", "dt.", "os.HOME", "cm.x", "start.", "end.%H",
    ]  # fmt: skip
    assert check("".join(f"{{{field}}}" for field in fields)) == []


def test_unknown_field_is_reported_with_offset() -> None:
    [(offset, message)] = check("ok {name} {nmae}")
    assert offset == 10
    assert "'nmae'" in message
    assert "progress" in message and "os.VAR" in message  # says which fields are allowed


def test_a_sweeps_parameters_are_fields_and_are_listed_when_one_is_unknown() -> None:
    assert check("{name} {gpu} {host}", ("gpu", "host")) == []
    [(offset, message)] = check("{gpu} {gpus}", ("gpu", "run"))
    assert offset == 6
    assert "; parameters are: gpu, run; fields are: name, progress" in message


def test_substitute_fills_parameters_and_leaves_the_rest_to_render() -> None:
    template = "{name} {gpu} {{gpu}} {progress} {t0.%H} {"
    assert substitute(template, {"gpu": "a100"}) == "{name} a100 {{gpu}} {progress} {t0.%H} {"
    assert show(substitute("{host}: {gpu}", {"host": "n1", "gpu": "v100"})) == "n1: v100"


def test_empty_field_is_reported() -> None:
    [(offset, message)] = check("a{}")
    assert offset == 1
    assert "empty" in message


def test_unclosed_brace_is_reported_at_the_brace() -> None:
    [(offset, message)] = check("{name} {t0")
    assert offset == 7
    assert "not closed" in message


def test_brace_opened_inside_a_field_is_reported() -> None:
    [(offset, _)] = check("{na{name}")
    assert offset == 0


def test_single_closing_brace_is_reported() -> None:
    [(offset, message)] = check("50} done")
    assert offset == 2
    assert "}}" in message


@pytest.mark.parametrize("field", ["{name.%Y}", "{progress.}", "{host.x}"])
def test_format_on_a_field_that_is_not_a_time_is_reported(field: str) -> None:
    [(offset, message)] = check("x " + field)
    assert offset == 2
    assert "not a time" in message


@pytest.mark.parametrize("field", ["{os.}", "{cm.}", "{os}", "{cm}"])
def test_os_and_cm_without_a_variable_name_are_reported(field: str) -> None:
    [(offset, message)] = check(field)
    assert offset == 0
    assert "variable name" in message


def test_time_format_that_strftime_rejects_is_reported() -> None:
    [(offset, message)] = check("{t0.%Y\x00}")
    assert offset == 0
    assert "format" in message


def test_every_problem_is_reported_in_order() -> None:
    assert [offset for offset, _ in check("{x} } {name.y} {")] == [0, 4, 6, 15]


def test_check_returns_a_fresh_list_each_time() -> None:
    check("{x}").clear()  # the parse is cached; callers must not be able to change it
    assert len(check("{x}")) == 1


def test_rejected_field_is_shown_as_written() -> None:
    assert show("{name} {nmae} }") == "fetch {nmae} }"


def test_render_never_raises_on_random_templates() -> None:
    rng = random.Random(3)
    alphabet = ["{", "}", ".", "-", "%", "Y", "H", "name", "t0", "dt", "os", "cm", "x", r"\n"]
    status = JobStatus(name="fetch", state=JobState.RUNNING, tstart=T0)
    for _ in range(2_000):
        template = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        check(template)
        show(template, status=status)


def test_ten_thousand_labels_are_checked_in_well_under_100_ms() -> None:
    common = r"{name}\n{progress}% {t0.%H--%M} {dt0} {os.USER}"
    templates = [common] * 9_990 + [f"{{name}} job {i}" for i in range(10)]
    check(common)  # warm the interpreter, not the cache of the other ten
    started = time.perf_counter()
    for template in templates:
        assert check(template) == []
    assert time.perf_counter() - started < 0.1
