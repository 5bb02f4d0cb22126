"""The shared harness of the tests and the benchmark: real servers as context managers, a raw
LMTP client, a throwaway PostgreSQL, invitation builders. Nothing in the engine imports it."""
