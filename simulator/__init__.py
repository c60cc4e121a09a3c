"""relearn's stand-in for the apps: subjects, a hidden ground truth, outcome events, A/B runs."""
