"""The JSON Schemas of depot's documents, in ``schema/``. Installed, this package is
``depot_app.manifests``; ``pipeline.formats.canonical`` reads the schemas from it."""
