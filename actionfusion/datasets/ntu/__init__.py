"""NTU RGB+D 60/120: sample names, constants, the .skeleton format, depth, the dataset index."""
