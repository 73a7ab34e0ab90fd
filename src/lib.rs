//! Harness for the cross-tool pipeline tests in `tests/`: finds the real
//! binaries in the target directory and runs them.
