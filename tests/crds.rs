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
