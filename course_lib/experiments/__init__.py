"""One module per lecture: each function runs a measurement and returns plain numbers for a plot and a test."""
