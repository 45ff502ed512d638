"""The field's metrics, defined once, and the evaluation report."""
