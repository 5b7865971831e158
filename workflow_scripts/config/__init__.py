"""The workflow's configuration as a whole: every section composed, the generated files, overlays.

Each config key is a documented dataclass field, made with ``workflow_scripts.util.options.option``
in the module that uses it, and a section is turned into its dataclass by ``load_options``.

* :mod:`~workflow_scripts.config.model`: the root dataclass that composes every section.
* :mod:`~workflow_scripts.config.schema`: the JSON schema (with defaults) and the reference page
  ``docs/configuration.md``, both generated from the dataclasses (:mod:`~.generate`).
* :mod:`~workflow_scripts.config.overlay`: overlay files (the demo's settings) under a user's config.
* :mod:`~workflow_scripts.config.resolve`: the effective configuration outside Snakemake.

Regenerate the schema and the reference page after changing an option:
``python -m workflow_scripts.config generate`` (a test fails while they are out of date).
"""
