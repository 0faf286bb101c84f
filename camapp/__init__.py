"""camapp: a smart camera for the Raspberry Pi that classifies frames and publishes over MQTT."""

__version__ = "0.1.0"
