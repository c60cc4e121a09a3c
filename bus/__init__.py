"""Kafka adapters shared by the services: settings, client configuration, topic admin, the local broker."""
