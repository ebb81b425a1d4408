"""What the user sees: progress, the summary table, text from outside printed safely, redaction."""
