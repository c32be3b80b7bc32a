"""2D pose estimation, tracking, heatmap volumes and 3D lifting."""
