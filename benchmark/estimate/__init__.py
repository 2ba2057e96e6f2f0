"""Predicting a cell's memory and time before it runs: its model built without weights (fake tensors), one
simulated training step tracked tensor by tensor, and a time model over the step's operations."""
