//! The one skip rule of the tests that need the real kernel (root, memory cgroups, PSI, pidfd,
//! /dev/kmsg): compiled into the library's unit tests (`crate::kernel_skip`) and, by path, into
//! the integration tests (`tests/common`: `common::kernel`).
//!
//! A test that cannot run here calls [`skip`] (or [`require`]) and returns. It prints
//! `SKIP <test>: <why>`; with `OOMGUARD_REQUIRE_KERNEL=1` in the environment (CI sets it on
//! the machine the suite is meant for) it fails instead, so that a skipped real-kernel test
//! cannot pass as `ok` where it was supposed to run.

// Each includer uses its own subset (the unit tests, say, never call `require`).
#![allow(dead_code)]

/// The variable that turns a skip into a failure.
pub const REQUIRE_ENV: &str = "OOMGUARD_REQUIRE_KERNEL";

/// Whether skips are failures (`OOMGUARD_REQUIRE_KERNEL=1`).
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// `test` cannot run here because of `why`: prints it, or panics with
/// `OOMGUARD_REQUIRE_KERNEL=1`. The caller returns afterwards.
#[track_caller]
pub fn skip(test: &str, why: &str) {
    if required() {
        panic!("{test}: cannot run here ({why}), and {REQUIRE_ENV}=1 says it must");
    }
    eprintln!("SKIP {test}: {why}");
}

/// `Some(why)` when `test` cannot run: skips it (see [`skip`]) and returns false; `None`:
/// returns true. For `if !require(name, reason()) { return; }`.
#[track_caller]
pub fn require(test: &str, why_not: Option<String>) -> bool {
    match why_not {
        Some(why) => {
            skip(test, &why);
            false
        }
        None => true,
    }
}

/// Whether the test runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
