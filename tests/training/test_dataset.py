"""Dataset rules: de-duplication, malformed rows, targets, the seeded split, the minimum size."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.conftest import dataset_of, spec_of
from training.dataset import DatasetBuilder, require_samples, split_dataset
from training.errors import RejectionReason, TooFewSamplesError


def test_duplicates_keep_the_first_and_are_counted() -> None:
    builder = DatasetBuilder(spec_of("calling_score"))
    assert builder.add("a", [1.0] * 23, 0.25, True)
    assert not builder.add("a", [2.0] * 23, 0.75, False)
    dataset = builder.build()
    assert len(dataset) == 1 and dataset.duplicates == 1
    assert dataset.targets.tolist() == [0.25] and dataset.features[0, 0] == 1.0


@pytest.mark.parametrize(
    "features, score, positive",
    [
        ([1.0] * 22, 0.5, True),  # wrong feature count
        ([1.0] * 22 + [float("nan")], 0.5, True),  # non-finite feature
        ([1.0] * 22 + ["x"], 0.5, True),  # not a number
        ("not a list", 0.5, True),
        ([1.0] * 23, None, True),  # no target
    ],
)
def test_malformed_rows_are_skipped_not_fatal(
    features: object, score: object, positive: object
) -> None:
    builder = DatasetBuilder(spec_of("calling_score"))
    builder.add("good", [0.0] * 23, 0.5, True)
    builder.add("bad", features, score, positive)  # type: ignore[arg-type]
    dataset = builder.build()
    assert len(dataset) == 1 and dataset.skipped == 1


def test_bce_target_is_positive_outcome() -> None:
    builder = DatasetBuilder(spec_of("outcome_prediction"))
    builder.add("p", [0.0] * 23, 0.1, True)
    builder.add("n", [0.0] * 23, 0.9, False)
    builder.add("bad", [0.0] * 23, 0.9, "yes")  # type: ignore[arg-type]
    dataset = builder.build()
    assert dataset.targets.tolist() == [1.0, 0.0] and dataset.skipped == 1


def test_split_is_a_deterministic_partition() -> None:
    dataset = dataset_of("calling_score", 500)
    first, again = split_dataset(dataset, seed=3), split_dataset(dataset, seed=3)
    other = split_dataset(dataset, seed=4)
    assert (len(first.train), len(first.validation), len(first.test)) == (400, 50, 50)
    assert np.array_equal(first.test.features, again.test.features)
    assert not np.array_equal(first.test.features, other.test.features)
    rows = np.concatenate([first.train.features, first.validation.features, first.test.features])
    assert sorted(map(tuple, rows)) == sorted(map(tuple, dataset.features))


@pytest.mark.parametrize("count", [0, 5, 99])
def test_too_small_datasets_are_rejected(count: int) -> None:
    dataset = dataset_of("calling_score", count)
    with pytest.raises(TooFewSamplesError) as caught:
        require_samples(dataset, minimum=100)
    assert caught.value.reason is RejectionReason.TOO_FEW_SAMPLES
    assert f"{count} usable samples" in caught.value.detail
