"""watchcentre: message routing for an international police-cooperation watch centre."""

__version__ = "0.1.0"
