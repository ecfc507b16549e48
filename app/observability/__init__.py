"""What operators see of a running gateway: Prometheus metrics, JSON logs, request ids."""
