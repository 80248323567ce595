//! `crds/` must hold exactly what `tomato crds` generates: a change to the resource types
//! without `tomato crds --out-dir crds` fails here.

#[test]
fn crds_directory_is_in_sync_with_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let expected = tomato::crd::crd_files();
    for (name, yaml) in &expected {
        let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(
            on_disk == *yaml,
            "crds/{name} is out of date: run `cargo run -- crds --out-dir crds`"
        );
    }
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    assert_eq!(files, expected.len(), "crds/ holds a file no type generates");
}

#[test]
fn crds_have_status_subresources_short_names_and_printer_columns() {
    let crds: Vec<serde_json::Value> = tomato::crd::all_crds()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    let tr = &crds[0];
    assert_eq!(tr["spec"]["names"]["shortNames"], serde_json::json!(["tr"]));
    let version = &tr["spec"]["versions"][0];
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Service", "Stand", "Priority", "Phase", "Passed", "Failed", "Flaky", "Age"
        ]
    );
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["priority"]["maximum"], 9.0);
    assert_eq!(spec["required"], serde_json::json!(["service", "stand"]));
    assert_eq!(
        crds[1]["spec"]["names"]["shortNames"],
        serde_json::json!(["nsch"])
    );
}

/// The committed CRD snapshot carries what lets the API server refuse a bad TestRun at
/// `kubectl apply`: enums, ranges, patterns, required fields and CEL rules (the in-process
/// API fake of the operator tests does not evaluate them, so they are checked here).
#[test]
fn the_crd_snapshot_validates_what_a_bad_testrun_gets_wrong() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/testruns.tomato.dev.yaml"
    ))
    .unwrap();
    let crd: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let version = &crd["spec"]["versions"][0];
    let schema = &version["schema"]["openAPIV3Schema"];
    let spec = &schema["properties"]["spec"];
    let field = |name: &str| &spec["properties"][name];

    assert_eq!(spec["required"], serde_json::json!(["service", "stand"]));
    assert_eq!(field("service")["pattern"], "^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$");
    assert_eq!(field("service")["maxLength"], 63);
    assert_eq!(field("stand")["pattern"], r"^\S+$");
    assert_eq!(
        (
            field("priority")["minimum"].as_f64(),
            field("priority")["maximum"].as_f64()
        ),
        (Some(0.0), Some(9.0))
    );
    assert_eq!(field("retries")["maximum"].as_f64(), Some(9.0));
    assert_eq!(field("timeout")["pattern"], "^([0-9]+(s|m|h))+$");
    assert_eq!(field("issueKey")["pattern"], "^[A-Z][A-Z0-9_]*-[0-9]+$");
    assert_eq!(field("emails")["items"]["pattern"], r"^[^@\s]+@[^@\s]+$");
    assert_eq!(field("type")["enum"], serde_json::json!(["Regular", "Nightly"]));
    let env = &field("env")["items"];
    assert_eq!(env["properties"]["name"]["pattern"], "^[A-Za-z_][A-Za-z0-9_]*$");
    let env_rules: Vec<&str> = env["x-kubernetes-validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        env_rules,
        [
            "has(self.value) != has(self.valueFrom)",
            "!self.name.startsWith('TOMATO_')"
        ]
    );
    let rules: Vec<&str> = schema["x-kubernetes-validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            "spec.service and spec.stand cannot change once a run exists",
            "a cancelled run cannot be resumed"
        ]
    );
    let phase = &schema["properties"]["status"]["properties"]["phase"]["enum"];
    assert_eq!(phase.as_array().unwrap().len(), 8);
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
}

#[test]
fn crds_use_only_integer_formats_kubernetes_knows() {
    for (name, yaml) in tomato::crd::crd_files() {
        let formats: Vec<&str> = yaml
            .lines()
            .filter_map(|l| l.trim().strip_prefix("format: "))
            .collect();
        assert!(!formats.is_empty(), "{name} has integer fields");
        for format in formats {
            assert!(
                ["int32", "int64", "date-time", "double", "float", "byte"].contains(&format),
                "{name}: format {format} is not one the API server knows"
            );
        }
    }
}
