"""The tasks ``python -m minirnn train`` knows: data, splits and the model's output.

    row-mnist       28 steps of 28 pixels (the Qiita BN-LSTM note's setting)
    pixel-mnist     784 steps of 1 pixel
    permuted-mnist  784 steps of 1 pixel, in a fixed random order (seeded)
    sine            read sin(t), predict cos(t) at every step (as in the Stack
                    Overflow BN-in-LSTM question)
    mnist           the images themselves, (N, 1, 28, 28), for the CNN (the Qiita
                    batch-norm CNN note)

MNIST's validation set is the first 5,000 training images, the remaining 55,000
train (the split of TensorFlow's ``input_data`` that the Qiita BN-LSTM note uses);
the test set is the official 10,000. ``limit`` keeps the first N of each split, for
quick runs. The ``mnist`` task (images) holds out a random 10% of the training
images for validation, as the Qiita batch-norm CNN note does; read from Kaggle's
``train.csv`` (``kaggle_csv``), whose test file has no labels, that held-out 10% is
the test set as well.
"""

from dataclasses import dataclass

import numpy as np

from . import data

MNIST_TASKS = {"row-mnist": "row", "pixel-mnist": "pixel", "permuted-mnist": "permuted"}
TASKS = (*MNIST_TASKS, "sine", "mnist")
MNIST_VALIDATION = 5000
SINE_SIZES = {"train": 4000, "val": 500, "test": 500}
SINE_STEPS = 40


@dataclass
class Task:
    name: str
    kind: str  # "classification" or "regression"
    input_size: int
    n_outputs: int
    train: tuple  # (x: (N, T, input) float32, y)
    val: tuple
    test: tuple


def _first(split, limit):
    return split if limit is None else (split[0][:limit], split[1][:limit])


def load_images(*, seed=0, limit=None, data_root=None, raw_pixels=False, kaggle_csv=None):
    """The ``mnist`` task: x (N, 1, 28, 28) float32, pixels in [0, 1], or 0..255 with
    ``raw_pixels`` (the Qiita batch-norm CNN note feeds them unscaled)."""
    if kaggle_csv:
        images, labels = data.load_kaggle_csv(kaggle_csv)
        (x_tr, y_tr), (x_val, y_val) = data.train_val_split(images, labels, 0.1, seed)
        splits = [(x_tr, y_tr), (x_val, y_val), (x_val, y_val)]
    else:
        (x_train, y_train), test = data.load_mnist(data_root)
        train, val = data.train_val_split(x_train, y_train, 0.1, seed)
        splits = [train, val, test]
    scale = np.float32(1.0 if raw_pixels else 1 / 255)
    splits = [_first(s, limit) for s in splits]
    splits = [((x[:, None] * scale).astype(np.float32), y.astype(np.int64)) for x, y in splits]
    return Task("mnist", "classification", 1, 10, *splits)


def load_task(name, *, seed=0, limit=None, data_root=None, raw_pixels=False, kaggle_csv=None):
    """Load a task by name. ``seed`` fixes the permuted-MNIST pixel order, the sine
    phases and the images' validation split; ``limit`` keeps the first N examples
    of each split; ``raw_pixels`` and ``kaggle_csv`` concern the ``mnist`` task."""
    if name == "mnist":
        return load_images(
            seed=seed,
            limit=limit,
            data_root=data_root,
            raw_pixels=raw_pixels,
            kaggle_csv=kaggle_csv,
        )
    if name in MNIST_TASKS:
        (x_train, y_train), (x_test, y_test) = data.load_mnist(data_root)
        view = MNIST_TASKS[name]
        as_seq = lambda images: data.as_sequences(images, view, seed=seed)
        y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
        v = MNIST_VALIDATION
        splits = [(x_train[v:], y_train[v:]), (x_train[:v], y_train[:v]), (x_test, y_test)]
        # Convert after cutting, so a --limit run never converts all 60,000 images.
        splits = [_first(s, limit) for s in splits]
        splits = [(as_seq(x), y) for x, y in splits]
        _, T, I = splits[0][0].shape
        return Task(name, "classification", I, 10, *splits)
    if name == "sine":
        splits = []
        for k, split in enumerate(("train", "val", "test")):
            n = SINE_SIZES[split] if limit is None else min(limit, SINE_SIZES[split])
            splits.append(data.sine_cos_dataset(n, SINE_STEPS, seed=seed * 3 + k))
        return Task(name, "regression", 1, 1, *splits)
    raise ValueError(f"unknown task {name!r}; expected one of {list(TASKS)}")
