"""The HTTP doors: one request flow (`_serve`) under each wire format."""
