"""Other tools' formats: convert between backends, Minari, D4RL and TorchRL."""
