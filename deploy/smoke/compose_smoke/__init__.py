"""`make compose-smoke`, in parts: commands (running and waiting), table (the step report), context (one run's
settings and state), daemon (tools and a dockerd of its own), standins (base images from Debian packages),
wheelhouse (the image's wheels, served on loopback), project_image (docker/Dockerfile), stack (compose up,
health, down), user_flow (what a user does, through the project's typed clients) and run (the steps in order).
deploy/smoke/smoke.py is the entry point."""
