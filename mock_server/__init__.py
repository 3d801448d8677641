"""oneshot-mock: an offline sandbox of the Uanataca / Namirial One-Shot Signature API."""

__version__ = "0.1.0"
