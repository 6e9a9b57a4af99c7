"""intake: runs a submission mailbox by itself."""

__version__ = "0.1.0"
