"""The shell: CLI, config, the Textual app and the services that wire engine, sessions and
panels together."""

__version__ = "0.1.0"
