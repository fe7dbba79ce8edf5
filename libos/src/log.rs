//! LibOS log lines, written to the host's stderr through the ring.
//!
//! Each line starts with "[conf] " so it can be told apart from the
//! program's own output. The level comes from `loader.log_level` or, when
//! given, conf-run's `--log-level`.

use core::sync::atomic::{AtomicU8, Ordering};

use conf_abi::manifest::LogLevel;

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Error as u8);

pub fn set_level(l: LogLevel) {
    LEVEL.store(l as u8, Ordering::Relaxed);
}

pub fn enabled(l: LogLevel) -> bool {
    l as u8 <= LEVEL.load(Ordering::Relaxed)
}

pub fn level() -> LogLevel {
    LogLevel::from_raw(LEVEL.load(Ordering::Relaxed)).unwrap_or_default()
}

/// Format and write one line (no heap: lines longer than 2 KiB are cut).
pub fn write_line(level: LogLevel, args: core::fmt::Arguments<'_>) {
    let mut buf = crate::util::FixedBuf::<2048>::new();
    let tag = match level {
        LogLevel::Error => "error: ",
        LogLevel::Warning => "warning: ",
        _ => "",
    };
    let _ = core::fmt::write(&mut buf, format_args!("[conf] {tag}{args}\n"));
    crate::host::calls::write_all_host(2, buf.as_bytes());
}

#[macro_export]
macro_rules! log_at {
    ($lvl:expr, $($arg:tt)*) => {
        if $crate::log::enabled($lvl) {
            $crate::log::write_line($lvl, format_args!($($arg)*));
        }
    };
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log_at!(conf_abi::manifest::LogLevel::Error, $($arg)*) };
}

#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log_at!(conf_abi::manifest::LogLevel::Warning, $($arg)*) };
}

#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log_at!(conf_abi::manifest::LogLevel::Info, $($arg)*) };
}

#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log_at!(conf_abi::manifest::LogLevel::Debug, $($arg)*) };
}

#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log_at!(conf_abi::manifest::LogLevel::Trace, $($arg)*) };
}
