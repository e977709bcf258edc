"""dojoguard: a policy-compliance proxy for ClassDojo in UK schools."""

__version__ = "0.1.0"
