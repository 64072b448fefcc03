"""The restoration tasks (denoising, deJPEG, SR): levels, degradations and resizers, and each task's metric convention."""
