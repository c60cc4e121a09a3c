"""The dashboard served at `/`: its router, the registry-events follower and its static page."""
