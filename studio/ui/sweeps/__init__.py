"""The Sweeps view: build a sweep from the current model's settings, run it on Ray, pick a point."""
