"""Input-level studies: the optimal input level (Fig 5) and blind denoising with the noise estimator."""
