"""depthscale's policy engine: pure decisions, observation in, desired replicas and a reason out."""
