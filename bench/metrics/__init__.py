"""PSNR and SSIM with their spec, and the metric regression gate."""
