"""The built-in tiny model: synthetic data, training, evaluation."""
