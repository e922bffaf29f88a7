"""`when:` conditions: the grammar, its errors with their offsets, and evaluation."""

from __future__ import annotations

import pytest

from ccd.conditions import ConditionError, EvaluationError, Facts, evaluate, parse

FACTS = Facts(params={"gpu": "a100", "run": "2"},
              states={"train.gpu-a100": "done", "prep": "failed"},
              exit_codes={"train.gpu-a100": 0, "prep": 3},
              values={"train.gpu-a100": {"loss": "0.31", "best": "yes"}})


@pytest.mark.parametrize(("text", "expected"), [
    ('gpu == "a100"', True),
    ("run > 1 and run <= 2", True),
    ('not (gpu == "v100" or run == 1)', True),
    ('job("train.gpu-a100").state == "done"', True),
    ('job("prep").exit_code != 0', True),
    ('job("train.gpu-a100").values.loss < 0.5', True),
    ("job('train.gpu-a100').values.best == 'no'", False),
    ("true and false or true", True),
    ("false or false", False),
])
def test_conditions_evaluate_over_parameters_and_upstream_jobs(text: str, expected: bool
                                                                ) -> None:
    assert evaluate(parse(text), FACTS) is expected


@pytest.mark.parametrize(("text", "offset", "message"), [
    ('gpu == ', 7, "expected a value, a parameter or job(\"NAME\"), found the end"),
    ('gpu = "a"', 4, "unexpected '='"),
    ('gpu == "a', 7, "an unclosed string"),
    ('job(train).state', 4, "expected a job's name in quotes, found 'train'"),
    ('job("a").status', 9, "expected state, exit_code or values, found 'status'"),
    ('(gpu == "a"', 11, "expected `)`, found the end"),
    ('gpu "a"', 4, "expected `and`, `or` or the end, found '\"a\"'"),
])
def test_a_bad_condition_says_what_and_where(text: str, offset: int, message: str) -> None:
    with pytest.raises(ConditionError) as e:
        parse(text)
    assert (e.value.offset, e.value.message) == (offset, message)


@pytest.mark.parametrize(("text", "message"), [
    ('job("prep").values.loss > 1', "prep published no value 'loss' (a log line `# ccd loss=...`)"),
    ('gpu > 1', "'a100' is not a number"),
    ('gpu', "is 'a100', not true or false"),
    ('not run', "`not` needs true or false, not '2'"),
    ('true == "true"', "cannot compare true == 'true'"),
])
def test_what_cannot_be_evaluated_is_an_error(text: str, message: str) -> None:
    with pytest.raises(EvaluationError, match=None) as e:
        evaluate(parse(text), FACTS)
    assert str(e.value) == message
