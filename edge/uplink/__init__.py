"""The uplink: store-and-forward sync to the central campus platform, and its signed commands."""
