"""bagscope."""
