"""Delivery events from providers: anymail's tracking signal (bounces, complaints, opens)."""
