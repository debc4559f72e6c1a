"""Neural-network building blocks: layers (here), optimizers (teeny.nn.optim) and model state (teeny.nn.state)."""
