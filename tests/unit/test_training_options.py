"""TrainingOptions: the training settings declared once; ``rag-rerank train``'s flags are
generated from them. No model runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rag_rerank.api import TrainingOptions
from rag_rerank.cli import build_parser
from rag_rerank.errors import TrainingError

# What ``train`` parses beside the settings: what to train, from what, what to do after.
NOT_SETTINGS = {"corpus", "base", "out", "labels", "teacher", "restart", "prune", "verbose"}
NOT_SETTINGS |= {"command", "handler"}


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"loss": "hinge"}, "loss"),
        ({"steps": 0}, "steps"),
        ({"steps": True}, "steps"),
        ({"batch_size": 1}, "batch_size"),
        ({"max_length": 4}, "max_length"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"seed": 1.5}, "seed"),
        ({"device": ""}, "device"),
        ({"held_out": 1.0}, "held_out"),
        ({"hard_negatives": -1}, "hard_negatives"),
        ({"random_negatives": 2.0}, "random_negatives"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"stepz": 10}, "stepz"),
    ],
)
def test_a_bad_value_names_its_option(changes: dict, option: str) -> None:
    with pytest.raises(TrainingError) as caught:
        TrainingOptions.from_kwargs(**changes)
    assert caught.value.option == option
    assert str(caught.value).startswith(f"{option}: ")


def test_replace_checks_like_the_constructor_and_keeps_the_rest() -> None:
    options = TrainingOptions(steps=120, seed=3)
    assert options.replace(max_length=64) == TrainingOptions(steps=120, seed=3, max_length=64)
    with pytest.raises(TrainingError, match=r"^batch_size: must be an integer of at least 2"):
        options.replace(batch_size=1)


@pytest.mark.parametrize(
    ("loss", "teacher", "resolved"),
    [(None, False, "bce"), (None, True, "margin-mse"), ("mse", True, "mse")],
)
def test_the_loss_defaults_by_teacher(loss: str | None, teacher: bool, resolved: str) -> None:
    assert TrainingOptions(loss=loss).resolved_loss(teacher) == resolved  # type: ignore[arg-type]


def test_train_flags_are_exactly_the_settings_with_their_defaults() -> None:
    args = build_parser().parse_args(["train", "corpus.jsonl", "--out", "o"])
    assert set(vars(args)) - NOT_SETTINGS == set(TrainingOptions.names())
    defaults = TrainingOptions()
    for field in dataclasses.fields(TrainingOptions):
        assert getattr(args, field.name) == getattr(defaults, field.name), field.name


def test_a_bad_flag_value_is_a_usage_error_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["train", "c.jsonl", "--out", "o", "--batch-size", "1"])
    assert exit_info.value.code == 2
    assert "argument --batch-size: must be an integer of at least 2" in capsys.readouterr().err


def test_steps_zero_is_a_flag_value_for_prune_only() -> None:
    args = build_parser().parse_args(["train", "c.jsonl", "--out", "o", "--steps", "0"])
    assert args.steps == 0  # train --prune --steps 0: only a pruning head
    with pytest.raises(TrainingError, match=r"^steps: "):
        TrainingOptions(steps=0)


def test_cached_builds_stamped_before_training_options_still_count(tmp_path: Path) -> None:
    from rag_rerank.training import demo
    from rag_rerank.training.fixture import TEST_MODEL_SETTINGS, is_built

    old_stamps = {  # what the test model's and the demo's builds wrote before
        "test-model": {
            k: v for k, v in TEST_MODEL_SETTINGS.items() if k not in ("device", "held_out")
        },
        "demo": {**demo.DEMO_SETTINGS, "device": "cpu"},
    }
    wanted = {
        "test-model": TrainingOptions(**TEST_MODEL_SETTINGS),
        "demo": TrainingOptions(**demo.DEMO_SETTINGS, device="cpu"),
    }
    for name, stamp in old_stamps.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "fixture.json").write_text(json.dumps(stamp))
        assert is_built(tmp_path / name, wanted[name]), name
        assert not is_built(tmp_path / name, wanted[name].replace(seed=7)), name
