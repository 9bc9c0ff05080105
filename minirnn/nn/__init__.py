"""Layers and models with parameters, gradients and a train/eval mode."""

from .layers import Dense, Dropout, Layer, Recurrent, Sequential, TimeDistributedDense
from .models import SequenceClassifier, SequenceRegressor

__all__ = [
    "Layer",
    "Dense",
    "TimeDistributedDense",
    "Dropout",
    "Recurrent",
    "Sequential",
    "SequenceClassifier",
    "SequenceRegressor",
]

from .cnn import CNNClassifier
from .conv import Conv2D, Flatten, MaxPool2D, ReLU

__all__ += ["Conv2D", "MaxPool2D", "Flatten", "ReLU", "CNNClassifier"]

from .normalization import BatchNorm, LayerNorm

__all__ += ["BatchNorm", "LayerNorm"]
