"""The oracle's HTTP face: the app, its dependencies, the routes, and the codecs of its own v1 protocol and of
the Open Inference Protocol V2."""
