"""Training of the demo model and of the ControlNet (one loop for both scales)."""
