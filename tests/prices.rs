//! `sit prices diff|import` against a catalogue export (issue 12): the comparison is exact,
//! field by field; `import` proposes entries that, added to the file, make `diff` agree; the
//! shipped catalogue covers the shipped providers.toml, which agrees with it.

mod common;
use common::{sit, text};

const CATALOGUE: &str = r#"{"source": "genai-prices 9.9.9", "exported_at": "2026-11-30T09:00:00Z",
 "unit": "USD per 1,000,000 tokens", "providers": [
  {"id": "acme", "models": [
    {"id": "fast", "names": ["fast", "fast-2026"], "prices": [
      {"effective_from": null, "input": "0.5", "output": "1.5", "cached_input": null},
      {"effective_from": "2026-06-01T00:00:00Z", "input": "0.2", "output": "0.8", "cached_input": "0.02"}]},
    {"id": "same", "names": ["same"], "prices": [
      {"effective_from": null, "input": "1", "output": "2", "cached_input": null}]}]}]}"#;

fn endpoint(id: &str, model: &str, input: &str, output: &str) -> String {
    format!("[[endpoints]]\nid = \"{id}\"\nprovider = \"acme\"\nmodel = \"{model}\"\ndialect = \"openai\"\nbase_url = \"https://api.acme.example/v1\"\nregion = \"r\"\n\n[[endpoints.prices]]\neffective_from = \"2026-01-01T00:00:00Z\"\ninput = \"{input}\"\noutput = \"{output}\"\n\n")
}

#[test]
fn diff_names_each_difference_and_import_closes_it() {
    let t = tempfile::tempdir().unwrap();
    let cat = t.path().join("catalogue.json");
    std::fs::write(&cat, CATALOGUE).unwrap();
    let prov = t.path().join("providers.toml");
    let mut file = endpoint("acme-fast", "fast-2026", "0.5", "1.5")
        + &endpoint("acme-same", "same", "1", "2")
        + &endpoint("acme-other", "unlisted", "1", "1");
    std::fs::write(&prov, &file).unwrap();
    let p = prov.to_str().unwrap();
    let o = sit(&["--providers", p, "prices", "diff", cat.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    // The catalogue's June price is in force now (a matched alias), compared exactly.
    assert!(
        out.contains("acme-fast                      DIFFERS  input 0.500000 -> 0.200000, output 1.500000 -> 0.800000, cached_input 0.500000 -> 0.020000"),
        "{out}"
    );
    assert!(
        out.contains("acme-same                      same     (same)"),
        "{out}"
    );
    assert!(
        out.contains("acme-other                     not in the catalogue"),
        "{out}"
    );
    assert!(
        out.contains("1 of 3 endpoints differ from genai-prices 9.9.9 (exported 2026-11-30)"),
        "{out}"
    );

    let o = sit(&[
        "--providers",
        p,
        "prices",
        "import",
        cat.to_str().unwrap(),
        "--effective-from",
        "2026-11-30T00:00:00Z",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let proposal = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(proposal.contains("effective_from = \"2026-11-30T00:00:00Z\"\ninput = \"0.2\"\noutput = \"0.8\"\ncached_input = \"0.02\"\nsource = \"genai-prices 9.9.9 (exported 2026-11-30)\""), "{proposal}");
    // Added under its endpoint (the first one), the file checks and agrees with the catalogue.
    let entry: String = proposal.lines().skip(1).collect::<Vec<_>>().join("\n");
    file = file.replacen(
        "\n\n[[endpoints]]\nid = \"acme-same\"",
        &format!("\n\n{entry}\n\n[[endpoints]]\nid = \"acme-same\""),
        1,
    );
    std::fs::write(&prov, &file).unwrap();
    let o = sit(&["--providers", p, "check"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = sit(&["--providers", p, "prices", "diff", cat.to_str().unwrap()]);
    assert!(text(&o).contains("0 of 3 endpoints differ"), "{}", text(&o));

    // Not a catalogue: named, with the way to make one.
    std::fs::write(&cat, "{}").unwrap();
    let o = sit(&["--providers", p, "prices", "diff", cat.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("scripts/export-genai-prices.py"),
        "{}",
        text(&o)
    );
}

#[test]
fn shipped_providers_agree_with_the_shipped_catalogue() {
    let root = env!("CARGO_MANIFEST_DIR");
    let o = sit(&[
        "--providers",
        &format!("{root}/providers.toml"),
        "prices",
        "diff",
        &format!("{root}/prices/genai-prices.json"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("0 of 16 endpoints differ"), "{out}");
    assert_eq!(out.matches(" same ").count(), 15, "{out}");
    assert!(
        out.contains("deepinfra-qwen-2.5-72b         not in the catalogue"),
        "{out}"
    );
}
