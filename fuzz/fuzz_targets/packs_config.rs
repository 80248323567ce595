//! Loading a service file never panics: any text is a service or a list of errors, each
//! naming a field or the file.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

/// An empty packs_config directory: relative paths in the input resolve inside it.
static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().unwrap());

fuzz_target!(|text: &str| {
    let dir = DIR.path();
    let file = dir.join("fuzzed.yaml");
    if let Err(errors) = tomato::packs::PacksConfig::parse_service(dir, Path::new(&file), text) {
        assert!(!errors.0.is_empty());
        for e in &errors.0 {
            assert!(!e.reason.is_empty());
        }
    }
});
