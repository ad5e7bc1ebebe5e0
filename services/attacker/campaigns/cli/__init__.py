"""`bbrange attack …`: serve, worker, run a campaign, reports and users."""
