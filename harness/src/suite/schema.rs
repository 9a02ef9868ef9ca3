//! The JSON Schema of suite files, for editors (`suites/suite.schema.json`).

/// The schema as pretty JSON, ending in a newline.
pub fn json() -> String {
    let schema = schemars::schema_for!(super::SuiteSpec);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    /// The committed schema is the generated one: regenerate with `firedrill schema > suites/suite.schema.json`.
    #[test]
    fn committed_schema_is_current() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let committed = std::fs::read_to_string(root.join("suites/suite.schema.json")).unwrap_or_default();
        assert!(committed == super::json(), "suites/suite.schema.json is stale: run `cargo run -p firedrill -- schema > suites/suite.schema.json`");
    }
}
