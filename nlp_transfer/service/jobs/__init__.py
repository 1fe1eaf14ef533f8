"""Jobs: tables, the queue (create/claim), the local executor and the loop's events."""
