"""Tests of the classification front end (uqseg.cls, on mmpretrain)."""
