"""Point clouds: back-projection from depth and point sampling."""
