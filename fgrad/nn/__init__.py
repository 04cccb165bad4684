"""fgrad.nn: Modules (pytrees), layers, JAX's activation set, initializers, pooling, dropout and losses."""
from fgrad.nn.module import FrozenModuleError, Module
from fgrad.nn.layers import MLP, AvgPool2d, Dropout, Embedding, Lambda, Linear, MaxPool2d, Sequential
from fgrad.nn.layers import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AvgPool1d, AvgPool3d, Flatten,
                             Identity, MaxPool1d, MaxPool3d)
from fgrad.nn.conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from fgrad.nn.normalization import LayerNorm, RMSNorm
from fgrad.nn.normalization import (BatchNorm, BatchNorm1d, BatchNorm2d, BatchNorm3d, BatchNormState, GroupNorm,
                                    InstanceNorm1d, InstanceNorm2d, InstanceNorm3d)
from fgrad.nn.attention import MultiheadAttention
from fgrad.nn.functional import (avg_pool2d, celu, dropout, elu, flatten, gelu, glu, hard_sigmoid, hard_silu,
                                 hard_swish, hard_tanh, identity, leaky_relu, log_sigmoid, log_softmax, logsumexp,
                                 max_pool2d, mish, one_hot, relu, relu6, selu, sigmoid, silu, soft_sign, softmax,
                                 softplus, sparse_plus, sparse_sigmoid, squareplus, standardize, swish)
from fgrad.nn.functional import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d, avg_pool1d,
                                 avg_pool3d, batch_norm, conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d,
                                 conv_transpose3d, group_norm, instance_norm, max_pool1d, max_pool3d)
from fgrad.nn.functional import log1mexp, logmeanexp
from fgrad.nn.dot_product_attention import dot_product_attention
from fgrad.numpy import tanh  # noqa: F401  (jax.nn.tanh is jnp.tanh)
from fgrad.nn.losses import cross_entropy, mse, sparse_categorical_crossentropy
from fgrad.nn import initializers

__all__ = ["Module", "FrozenModuleError", "Linear", "Conv2d", "Embedding", "LayerNorm", "RMSNorm",
           "MultiheadAttention", "Dropout", "Sequential", "Lambda", "MaxPool2d", "AvgPool2d", "MLP", "relu", "relu6", "sigmoid", "silu", "swish",
           "gelu", "softplus", "log_sigmoid", "elu", "selu", "celu", "leaky_relu", "hard_tanh", "hard_sigmoid",
           "hard_silu", "hard_swish", "identity", "soft_sign", "squareplus", "sparse_plus", "sparse_sigmoid",
           "mish", "glu", "standardize", "logsumexp", "log_softmax", "softmax", "one_hot",
           "max_pool2d", "avg_pool2d", "dropout", "flatten", "cross_entropy", "mse",
           "sparse_categorical_crossentropy", "initializers", "log1mexp", "logmeanexp", "dot_product_attention", "tanh",
           "Conv1d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "GroupNorm", "BatchNorm",
           "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "BatchNormState", "InstanceNorm1d", "InstanceNorm2d",
           "InstanceNorm3d", "Identity", "Flatten", "MaxPool1d", "MaxPool3d", "AvgPool1d", "AvgPool3d",
           "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "conv1d", "conv2d", "conv3d",
           "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "group_norm", "instance_norm", "batch_norm",
           "max_pool1d", "max_pool3d", "avg_pool1d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
           "adaptive_avg_pool3d"]
