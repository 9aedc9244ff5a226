"""The tracking service: opens, clicks, unsubscribes and the pages people see."""
