"""What both services need: datasets, architectures, the tensor wire format, HTTP schemas."""
