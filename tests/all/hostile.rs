//! Damaged inputs never panic: every bit flip of a valid component either
//! pre-initializes or fails with an error.

use crate::support::*;
use component_init::{InstrumentOptions, Plan, Snapshot, instrument};

const INPUT: &str = r#"(component
  (core module $m
    (memory (export "memory") 1)
    (global $g (mut i32) (i32.const 0))
    (data (i32.const 8) "data")
    (func (export "init") (global.set $g (i32.const 1)) (i32.store (i32.const 0) (i32.const 2)))
    (func (export "get") (result i32) (global.get $g)))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "get") (result s32) (canon lift (core func $i "get"))))"#;

#[test]
fn every_single_bit_flip_is_handled_without_panicking() {
    let input = wat(INPUT);
    let mut ok = 0;
    let mut rejected = 0;
    for at in 0..input.len() {
        for bit in [0, 3, 7] {
            let mut damaged = input.clone();
            damaged[at] ^= 1 << bit;
            // `instrument` parses and validates; errors are fine, panics are not.
            match std::panic::catch_unwind(|| instrument(&damaged, &InstrumentOptions::default())) {
                Ok(Ok(instrumented)) => {
                    // a flip that leaves a valid component (one inside the
                    // data segment's bytes, say) is instrumented into a
                    // valid component
                    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
                        .validate_all(&instrumented.component)
                        .unwrap_or_else(|e| {
                            panic!("flip of bit {bit} at byte {at}: invalid output: {e}")
                        });
                    ok += 1
                }
                Ok(Err(_)) => rejected += 1,
                Err(_) => panic!("panicked on a flip of bit {bit} at byte {at}"),
            }
        }
    }
    // Both outcomes occur: flips in the header are rejected, flips in the
    // data segment's bytes are not.
    assert!(rejected > 0, "no flip was rejected");
    assert!(ok > 0, "every flip was rejected");
}

#[test]
fn damaged_plans_and_snapshots_are_errors() {
    let input = wat(INPUT);
    let instrumented = instrument(&input, &InstrumentOptions::default()).unwrap();
    let output = pre_init(&input).unwrap();
    assert!(!output.is_empty());
    // A snapshot that does not fit the plan.
    let plan = &instrumented.plan;
    assert!(plan.apply(&input, &Snapshot::default()).is_err());
    // A plan for another component.
    let other = wat(&INPUT.replace("\"data\"", "\"atad\""));
    let snapshot = Snapshot {
        values: vec![
            component_init::Value::Memory(vec![0; 65536].into()),
            component_init::Value::Global(component_init::GlobalValue::I32(1)),
        ],
    };
    let err = plan.apply(&other, &snapshot).unwrap_err();
    assert!(err.to_string().contains("different component"), "{err}");
    // Every field of the plan's JSON, damaged, gives an error or a valid
    // output, never a panic.
    let json = plan.to_json();
    for (i, _) in json.char_indices().filter(|(_, c)| c.is_ascii_digit()) {
        for digit in ["9", "0"] {
            let mut damaged = json.clone();
            damaged.replace_range(i..i + 1, digit);
            let result = std::panic::catch_unwind(|| {
                Plan::from_json(&damaged).and_then(|p| p.apply(&input, &snapshot))
            });
            match result {
                Ok(Ok(bytes)) => validate(&bytes),
                Ok(Err(_)) => {}
                Err(_) => panic!("panicked on plan {damaged}"),
            }
        }
    }
}
