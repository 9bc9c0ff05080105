"""Layers and models with parameters, gradients and a train/eval mode."""
from .layers import Dense, Dropout, Layer, Recurrent, Sequential, TimeDistributedDense
from .models import SequenceClassifier, SequenceRegressor

__all__ = ["Layer", "Dense", "TimeDistributedDense", "Dropout", "Recurrent", "Sequential",
           "SequenceClassifier", "SequenceRegressor"]
