"""End-to-end tests of the running system (`make up`), driven as an operator drives it."""
