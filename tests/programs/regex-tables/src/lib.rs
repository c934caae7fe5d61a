//! Init compiles the regexes listed in `tables.json` and builds a word table
//! (a `HashMap`) from the same JSON; `run` classifies words with them.

use regex::Regex;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

wit_bindgen::generate!({
    path: ["../../../wit", "../wit"],
    world: "component-init:test-guests/regex-tables",
});

struct Tables {
    patterns: Vec<(String, Regex)>,
    words: HashMap<String, String>,
}

static TABLES: OnceLock<Tables> = OnceLock::new();
static INIT_CALLS: AtomicU32 = AtomicU32::new(0);

/// The init work, done at most once per instance (by `component-init`, or by
/// the first `run` of an instance that was not initialized).
fn tables() -> &'static Tables {
    TABLES.get_or_init(|| {
        INIT_CALLS.fetch_add(1, Ordering::SeqCst);
        let json: serde_json::Value =
            serde_json::from_str(include_str!("../tables.json")).expect("tables.json parses");
        let patterns = json["patterns"]
            .as_array()
            .expect("patterns")
            .iter()
            .map(|p| {
                let name = p["name"].as_str().expect("name").to_string();
                let regex =
                    Regex::new(p["regex"].as_str().expect("regex")).expect("regex compiles");
                (name, regex)
            })
            .collect();
        let words = json["words"]
            .as_object()
            .expect("words")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("category").to_string()))
            .collect();
        let tables = Tables { patterns, words };
        // Warm the regexes' caches, as a real program's self-test would.
        classify(
            &tables,
            "2024-02-29 12:30 #fff 3.5e2 ada@example.org 10.0.0.1 naïve",
        );
        tables
    })
}

fn classify(tables: &Tables, input: &str) -> String {
    let mut out = String::new();
    for token in input.split_whitespace() {
        let kind = tables
            .patterns
            .iter()
            .find(|(_, re)| re.is_match(token))
            .map(|(name, re)| {
                let caps = re.captures(token).expect("matched");
                let named: Vec<String> = re
                    .capture_names()
                    .flatten()
                    .filter_map(|n| caps.name(n).map(|m| format!("{n}={}", m.as_str())))
                    .collect();
                if named.is_empty() {
                    name.clone()
                } else {
                    format!("{name}({})", named.join(","))
                }
            })
            .unwrap_or_else(|| "other".to_string());
        let category = tables
            .words
            .get(&token.to_lowercase())
            .map_or("-", String::as_str);
        writeln!(out, "{token}: {kind} {category}").unwrap();
    }
    out
}

struct RegexTables;

impl Guest for RegexTables {
    fn component_init() {
        tables();
    }

    fn run(input: String) -> String {
        classify(tables(), &input)
    }

    fn init_calls() -> u32 {
        INIT_CALLS.load(Ordering::SeqCst)
    }
}

export!(RegexTables);
