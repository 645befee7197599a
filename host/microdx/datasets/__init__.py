"""Loaders for the offline datasets the demos and tools use (never downloaded at run time)."""
