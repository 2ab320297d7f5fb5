"""The warm pool: standby workers with a loaded model, promoted and released by a controller."""
