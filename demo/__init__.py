"""The demo: the whole path on one machine (``depthscale demo``), and the replay of a trace
through it set against the simulator (``depthscale replay``). Not part of the production
scaler; it may import every wing (docs/architecture.md)."""
