//! Helpers for the end-to-end tests: finding binaries, free ports, bounded waits.
