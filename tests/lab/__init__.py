"""Tests of the experiment lab (lab/)."""
