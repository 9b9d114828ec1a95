"""Sources: everything that brings readings and detections into the gateway."""
