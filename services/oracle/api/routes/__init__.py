"""The oracle's HTTP routes, one router per concern; `bbrange.oracle.api.app.create_app` includes them all."""
