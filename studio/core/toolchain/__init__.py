"""Compile a model for a QNN backend and package it as a deployment bundle (see compile.py)."""
