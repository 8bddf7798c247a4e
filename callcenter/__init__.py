"""callcenter: the command-center engine around a stock Asterisk PBX."""

__version__ = "0.1.0"
