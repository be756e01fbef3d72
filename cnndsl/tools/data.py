"""Small built-in data sets for `cnndsl train`, shaped to a network's input.

`digits` is scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), which ships
inside the scikit-learn package, so nothing is downloaded. The split is fixed (stratified,
80% train / 20% test, seed 0) whatever the training seed, so accuracies are comparable.
Images are resized bilinearly to the network's input size, repeated over its channels, and
standardised with the training set's mean and standard deviation. A flat input of k*k
features gets a kxk image, flattened.

torch and scikit-learn are imported only when a data set is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

SPLIT_SEED = 0
TEST_FRACTION = 0.2


class DataError(ValueError):
    """A data set that cannot be shaped to the network (the message says why)."""


@dataclass
class Split:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int


def _digits(shape: tuple[int, ...]) -> Split:
    import torch
    import torch.nn.functional as F

    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise DataError("the digits data set needs scikit-learn: pip install scikit-learn") from None

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)  # N x 1 x 8 x 8, values 0..16
    labels = torch.tensor(digits.target, dtype=torch.long)
    if len(shape) == 3:
        channels, height, width = shape
        images = F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False)
        images = images.expand(-1, channels, -1, -1).contiguous()
    elif len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0]:
        side = math.isqrt(shape[0])
        images = F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False).flatten(1)
    else:
        raise DataError(f"digits are images: the network's input {'x'.join(map(str, shape))} is neither CxHxW "
                        "nor a square number of features (try --input 1x32x32)")
    train, test = train_test_split(range(len(labels)), test_size=TEST_FRACTION, random_state=SPLIT_SEED,
                                   stratify=digits.target)
    x_train, x_test = images[train], images[test]
    mean, std = x_train.mean(), x_train.std()
    return Split("digits", (x_train - mean) / std, labels[train], (x_test - mean) / std, labels[test], 10)


DATASETS: dict[str, Callable[[tuple[int, ...]], Split]] = {"digits": _digits}


def load(name: str, shape: tuple[int, ...]) -> Split:
    """The data set NAME, resized for a network whose input has SHAPE (C or CxHxW)."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r} (known: {', '.join(sorted(DATASETS))})")
    return DATASETS[name](tuple(shape))
