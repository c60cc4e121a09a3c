"""The streams service: a consumer-group worker that validates, de-duplicates and counts outcome
events, keeps daily performance, triggers retraining and runs the live A/B test."""
