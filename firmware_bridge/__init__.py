"""Classroom device protocols, usable without the edge daemon (no import of `edge`)."""
