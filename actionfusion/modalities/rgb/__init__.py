"""RGB video: decoding backends, person crops, frame transforms."""
