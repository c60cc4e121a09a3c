"""The registry's HTTP adapter: one router per resource, dependencies as Annotated aliases."""
