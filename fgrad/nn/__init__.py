"""fgrad.nn: Modules (pytrees), layers, activations, pooling, dropout and losses."""
from fgrad.nn.module import FrozenModuleError, Module
from fgrad.nn.layers import Conv2d, Dropout, Embedding, Lambda, Linear, Sequential
from fgrad.nn.normalization import LayerNorm, RMSNorm
from fgrad.nn.attention import MultiheadAttention
from fgrad.nn.functional import (avg_pool2d, dropout, flatten, gelu, log_softmax, logsumexp, max_pool2d,
                                 one_hot, relu, sigmoid, silu, softmax)
from fgrad.nn.losses import cross_entropy, mse, sparse_categorical_crossentropy

__all__ = ["Module", "FrozenModuleError", "Linear", "Conv2d", "Embedding", "LayerNorm", "RMSNorm",
           "MultiheadAttention", "Dropout", "Sequential", "Lambda", "relu", "sigmoid", "silu", "gelu",
           "logsumexp", "log_softmax", "softmax", "one_hot", "max_pool2d", "avg_pool2d", "dropout",
           "flatten", "cross_entropy", "mse", "sparse_categorical_crossentropy"]
