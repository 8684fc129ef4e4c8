"""placeholder; replaced by the package owner."""
