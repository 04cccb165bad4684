"""The compile layer: jaxpr -> lowering for a target -> backend executable."""
