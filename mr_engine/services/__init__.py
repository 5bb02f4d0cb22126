"""Services that combine the core's decisions with the store: processing meeting requests,
keeping series materialized, and the replies they send. Used by the front ends."""
