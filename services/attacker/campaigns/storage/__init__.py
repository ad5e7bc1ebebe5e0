"""What the campaign service keeps: records and indexes in Redis, users, sealed targets, samples and uploads."""
