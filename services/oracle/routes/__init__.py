"""The oracle's HTTP routes, one router per concern; `bbrange.oracle.app.create_app` includes them all."""
