"""The campaign spec, validated in the API process without the engine: what to attack, with which images, how."""
