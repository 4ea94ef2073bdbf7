"""Non-learned baselines, judged by the same metrics as the model."""
