"""TensorBoard diagnostics for kinit (weights, activations, gradients)."""
