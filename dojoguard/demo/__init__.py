"""``dojoguard demo``: a scripted school day played through the real proxy in front of a ClassDojo stand-in.

Nothing here is a simulation of dojoguard itself: the proxy is the real
``dojoguard run`` process, the consents are imported with ``dojoguard consent``,
the exemption is granted with ``dojoguard exempt grant`` and the report is
written by ``dojoguard audit report``. Only ClassDojo is stood in for.
"""
