"""Replaying CFPB complaints as disputes and scoring the proposals (`dispute-platform evaluate`)."""
