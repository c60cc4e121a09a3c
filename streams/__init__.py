"""The streams service: a faust app that validates, de-duplicates and counts outcome events."""
