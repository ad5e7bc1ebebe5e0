"""The campaign service's HTTP face: the app, who is calling, body limits, the routes and what they answer."""
