"""Send: one chunk through the transport, the deferred retry and the dry run."""
