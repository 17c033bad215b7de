//! Config loading as `gateway check` and `serve` do it (`gateway::config::load`): TOML parse,
//! conversion and validation of any bytes. It must never panic, only return errors.
//!
//! UTF-8 input goes through `config::load_str` (what `load` does after reading the file);
//! other bytes are written to a file and read with `config::load`, which reports them.
//!
//! Properties: an error list is never empty, names the file, and points inside it (a line of
//! the document, a column within that line, or no position at all); loading is
//! deterministic (checked on one input in eight: a load is the slow part); an accepted config
//! has a route.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gateway::config::{self, ConfigErrors};
use libfuzzer_sys::fuzz_target;

/// Where the document claims to come from (relative paths resolve against /fuzz).
const SOURCE: &str = "/fuzz/gateway.toml";

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(src) => {
            let source = Path::new(SOURCE);
            let loaded = config::load_str(src, source);
            match &loaded {
                Ok(c) => assert!(!c.routes.is_empty(), "a config without routes"),
                Err(errs) => errors_point_into(errs, src, source),
            }
            // Loading twice costs twice: check determinism on one input in eight.
            if data.len() % 8 == 0 {
                let again = config::load_str(src, source);
                match (&loaded, &again) {
                    (Ok(_), Ok(_)) => {}
                    (Err(a), Err(b)) => assert_eq!(a.0, b.0, "errors differ between two loads"),
                    _ => panic!("one load accepted what the other refused"),
                }
            }
        }
        Err(_) => {
            let path = scratch_file();
            std::fs::write(path, data).expect("write the scratch config");
            let errs = config::load(path).expect_err("non-UTF-8 accepted");
            errors_point_into(&errs, &String::from_utf8_lossy(data), path);
        }
    }
});

fn errors_point_into(errs: &ConfigErrors, src: &str, file: &Path) {
    assert!(!errs.0.is_empty(), "an empty error list");
    let lines: Vec<&str> = src.split('\n').collect();
    for e in &errs.0 {
        assert_eq!(e.file, file);
        assert!(!e.reason.is_empty(), "an error without a reason: {e:?}");
        if e.line == 0 {
            assert_eq!(e.col, 0, "a column without a line: {e:?}");
            continue;
        }
        let line = lines
            .get(e.line - 1)
            .unwrap_or_else(|| panic!("line past the end ({} lines): {e:?}", lines.len()));
        assert!(
            e.col >= 1 && e.col <= line.chars().count() + 1,
            "column outside line {:?}: {e:?}",
            line
        );
    }
    // The message a user sees is built without panicking.
    let _ = errs.to_string();
}

/// One scratch file per process, in memory where the system has it.
fn scratch_file() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("gateway-fuzz-config-{}.toml", std::process::id()))
    })
}
