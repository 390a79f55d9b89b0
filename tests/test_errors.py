"""errors.context: the caller names experiment and subject for errors raised by context-free code."""

from __future__ import annotations

import pytest

from spectsynth.errors import (
    EvaluationError,
    InputDataError,
    ProcessingError,
    context,
    current_context,
)


def _fail(**kwargs):
    raise EvaluationError("the masks are empty", hint="Check the segmentation", **kwargs)


def test_no_context_gives_problem_and_hint_only():
    with pytest.raises(EvaluationError) as info:
        _fail()
    assert str(info.value) == "the masks are empty. Check the segmentation"
    assert info.value.experiment is None and info.value.subject is None


def test_context_fills_experiment_and_subject_in_the_usual_form():
    with pytest.raises(EvaluationError) as info:
        with context(experiment="s2_native", subject="03"):
            _fail()
    assert str(info.value) == "experiment s2_native: subject 03: the masks are empty. Check the segmentation"
    assert (info.value.experiment, info.value.subject, info.value.problem) == ("s2_native", "03",
                                                                               "the masks are empty")
    # the same message as naming both where the error is raised
    assert str(info.value) == str(EvaluationError("the masks are empty", experiment="s2_native", subject="03",
                                                  hint="Check the segmentation"))


def test_inner_context_wins_for_what_it_sets_and_the_outer_one_comes_back():
    with context(experiment="S1"):
        with context(subject="A"):
            assert current_context() == {"experiment": "S1", "subject": "A"}
            with context(experiment="S1 real", subject="real"):
                with pytest.raises(EvaluationError, match="^experiment S1 real: subject real: the masks"):
                    _fail()
            with pytest.raises(EvaluationError, match="^experiment S1: subject A: the masks"):
                _fail()
        with pytest.raises(EvaluationError, match="^experiment S1: the masks") as info:
            _fail()
        assert info.value.subject is None
    assert current_context() == {}


def test_values_given_at_the_raise_site_win_over_the_context():
    with context(experiment="outer", subject="01"):
        with pytest.raises(EvaluationError, match="^experiment own: subject 01: the masks"):
            _fail(experiment="own")
        with pytest.raises(EvaluationError, match="^experiment outer: subject 02: the masks"):
            _fail(subject="02")


def test_context_is_restored_after_an_error_escapes():
    with pytest.raises(EvaluationError):
        with context(experiment="x", subject="1"):
            _fail()
    assert current_context() == {}
    with pytest.raises(EvaluationError) as info:
        _fail()
    assert str(info.value).startswith("the masks")


def test_an_error_caught_inside_the_block_names_the_context_too():
    """What an evaluation records as the reason a statistic was not computed names the experiment."""
    with context(experiment="S1"):
        try:
            _fail()
        except EvaluationError as exc:
            reason = str(exc)
    assert reason == "experiment S1: the masks are empty. Check the segmentation"


def test_subject_errors_of_other_kinds_take_the_subject():
    with context(experiment="ignored here", subject="07"):
        e = InputDataError("no signal", path="sub-07_T1w.nii.gz", hint="Re-export the scan")
        p = ProcessingError("registration diverged")
        own = InputDataError("no signal", subject="08")
    assert str(e) == "subject 07: sub-07_T1w.nii.gz: no signal. Re-export the scan"
    assert str(p) == "subject 07: registration diverged"
    assert own.subject == "08"


def test_context_works_as_a_decorator():
    @context(experiment="deco")
    def run():
        _fail()

    with pytest.raises(EvaluationError, match="^experiment deco: the masks"):
        run()
    assert current_context() == {}
