"""Running a campaign in a worker: the job queue, the plan from spec to engine, the runner, what is kept of a result."""
