//! Outputs stay byte for byte what they were: a set of inputs, each
//! pre-initialized by the command line, the library and the split pipeline's
//! `apply`, against the length and FNV-1a hash of the output recorded from
//! the code before the speed-ups of issue #22 (which must not change a
//! byte). When an intended change of the output format moves a hash, record
//! the new values the failure prints, and say why in the commit.

use component_init::{InitFunc, InstrumentOptions, Reproducible, WasiOptions, WasmtimeRuntime};

use crate::guests::wasip2_guest;
use crate::support::*;

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// (length, FNV-1a) of an output.
type Fingerprint = (usize, u64);

fn fingerprint(bytes: &[u8]) -> Fingerprint {
    (bytes.len(), fnv1a(bytes))
}

/// Every kind of state: several memories (one 64-bit, one of 1-byte pages,
/// one that grows from 0), mutable globals of every numeric type beside
/// immutable ones, active and passive data (one dropped during init), an
/// element segment dropped during init, a start function, and a second
/// module instantiated twice whose instances end in different states.
const STATE: &str = r#"
(component
  (core module $m
    (memory $a 1)
    (memory $b i64 1)
    (memory $c 0)
    (memory $tiny 3 (pagesize 1))
    (table $t 2 funcref)
    (global $k i32 (i32.const 9))
    (global $i32 (mut i32) (i32.const 1))
    (global $i64 (mut i64) (i64.const 2))
    (global $f32 (mut f32) (f32.const 3.5))
    (global $f64 (mut f64) (f64.const 4.25))
    (global $v128 (mut v128) (v128.const i64x2 5 6))
    (global $untouched (mut i64) (i64.const -7))
    (data (memory $a) (i32.const 16) "active bytes")
    (data (memory $a) (i32.const 60000) "\00\00\00near the end\00")
    (data $d "abcd")
    (data $kept "wxyz")
    (func $f (result i32) (i32.const 5))
    (elem $e func $f)
    (func $start (global.set $i32 (i32.const 100)))
    (start $start)
    (func (export "init")
      (local $i i32)
      (memory.init $a $d (i32.const 100) (i32.const 0) (i32.const 4))
      (data.drop $d)
      (elem.drop $e)
      (drop (memory.grow $a (i32.const 2)))
      (block $done
        (loop $fill
          (br_if $done (i32.ge_u (local.get $i) (i32.const 40000)))
          (i32.store8 $a (i32.add (i32.const 70000) (local.get $i))
            (i32.add (i32.const 1) (i32.rem_u (local.get $i) (i32.const 251))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $fill)))
      (i32.store $a (i32.const 190000) (i32.const 0x01020304))
      (i64.store $b (i64.const 4096) (i64.const 0x1122334455667788))
      (drop (memory.grow $c (i32.const 1)))
      (i32.store $c (i32.const 8) (i32.const 33))
      (drop (memory.grow $tiny (i32.const 5)))
      (i32.store8 $tiny (i32.const 7) (i32.const 0x99))
      (global.set $i32 (i32.add (global.get $i32) (global.get $k)))
      (global.set $i64 (i64.const 0x7fffffffffffffff))
      (global.set $f32 (f32.const -0.0))
      (global.set $f64 (f64.const 1e300))
      (global.set $v128 (v128.const i64x2 0x0102030405060708 0x1112131415161718)))
    (func (export "load") (result i32) (i32.load $a (i32.const 100))))
  (core module $n
    (memory 1)
    (global $g (mut i32) (i32.const 0))
    (func (export "set") (param i32)
      (global.set $g (local.get 0))
      (i32.store (i32.const 4) (local.get 0))))
  (core instance $i (instantiate $m))
  (core instance $n1 (instantiate $n))
  (core instance $n2 (instantiate $n))
  (core module $both
    (import "m" "init" (func $init))
    (import "n" "set" (func $set (param i32)))
    (func (export "run") (call $init) (call $set (i32.const 42))))
  (core instance $b (instantiate $both
    (with "m" (instance $i))
    (with "n" (instance $n1))))
  (func (export "component-init") (canon lift (core func $b "run")))
  (func (export "load") (result u32) (canon lift (core func $i "load"))))"#;

/// A component with a memory and a global; `get` shows both.
const COUNTER: &str = r#"
  (component $counter
    (core module $m
      (global $n (mut i32) (i32.const 0))
      (memory 1)
      (func (export "bump")
        (global.set $n (i32.add (global.get $n) (i32.const 1)))
        (i32.store (i32.const 0) (global.get $n)))
      (func (export "get") (result i32)
        (i32.add (global.get $n) (i32.mul (i32.load (i32.const 0)) (i32.const 100)))))
    (core instance $i (instantiate $m))
    (func (export "bump") (canon lift (core func $i "bump")))
    (func (export "get") (result u32) (canon lift (core func $i "get"))))"#;

/// Nested components: state two levels deep, a nested component
/// instantiated twice whose instances diverge (a copy per state, indices
/// renumbered), and the init export removed (exports renumbered).
fn nested() -> String {
    format!(
        r#"(component
          (component $outer
            {COUNTER}
            (instance $c (instantiate $counter))
            (export "bump" (func $c "bump"))
            (export "get" (func $c "get")))
          (instance $o (instantiate $outer))
          {COUNTER}
          (instance $a (instantiate $counter))
          (instance $b (instantiate $counter))
          (core module $top
            (global $g (mut i32) (i32.const 5))
            (func (export "g") (result i32) (global.get $g)))
          (core instance $t (instantiate $top))
          (export "get-a" (func $a "get"))
          (export "component-init" (func $a "bump"))
          (export "get-b" (func $b "get"))
          (func (export "g") (result s32) (canon lift (core func $t "g")))
          (export "get-o" (func $o "get"))
          (export "bump-o" (func $o "bump")))"#
    )
}

/// What one input gives, by every path that writes an output.
struct Case {
    name: &'static str,
    /// A component or a core module, binary or text.
    input: Vec<u8>,
    /// The command line's flags besides the input and `-o`.
    args: &'static [&'static str],
    /// Whether init gets WASI (reproducible) in the library's run.
    wasi: bool,
    /// For a guest built from source here: the input the expected output
    /// was recorded from. Another toolchain builds another input, whose
    /// output is then only checked to be the same by every path.
    recorded_input: Option<Fingerprint>,
    expected: Fingerprint,
}

/// The library's pipeline ([`WasmtimeRuntime::initialize`]) and the split
/// one (instrument, snapshot, [`component_init::Plan::apply`], which
/// validates its input), with the options `args` gives.
fn library_outputs(case: &Case) -> Vec<(&'static str, Vec<u8>)> {
    let input = if case.input.starts_with(b"\0asm") {
        case.input.clone()
    } else {
        wat::parse_bytes(&case.input).unwrap().into_owned()
    };
    let runtime = || {
        let mut builder = WasmtimeRuntime::builder();
        if case.wasi {
            builder = builder.wasi(WasiOptions {
                reproducible: Some(Reproducible::default()),
                ..WasiOptions::default()
            });
        }
        builder.build().unwrap()
    };
    if wasmparser::Parser::is_core_wasm(&input) {
        let output = runtime()
            .initialize_module(&input, &component_init::ModuleOptions::default())
            .unwrap();
        return vec![("library", output)];
    }
    let keep = case.args.contains(&"--keep-init-func");
    let init_func = case
        .args
        .iter()
        .position(|a| *a == "--init-func")
        .map(|i| InitFunc::parse(case.args[i + 1]).unwrap());
    let options = InstrumentOptions {
        init_func,
        keep_init_func: keep,
    };
    let library = runtime().initialize(&input, &options).unwrap();
    let instrumented = component_init::instrument(&input, &options).unwrap();
    let snapshot = runtime().take_snapshot(&instrumented).unwrap();
    let split = instrumented.plan.apply(&input, &snapshot).unwrap();
    vec![("library", library), ("split", split)]
}

fn check(cases: Vec<Case>) {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let (out, path) = cli_in(dir.path(), &case.input, case.args);
        assert!(
            out.status.success(),
            "{}: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let mut outputs = vec![("command line", std::fs::read(&path).unwrap())];
        outputs.extend(library_outputs(case));
        let expected = match case.recorded_input {
            Some(recorded) if recorded != fingerprint(&case.input) => {
                eprintln!(
                    "{}: the guest built here differs from the one recorded (another \
                     toolchain?): its outputs are only compared with each other",
                    case.name
                );
                fingerprint(&outputs[0].1)
            }
            _ => case.expected,
        };
        for (path, output) in outputs {
            validate_any(&output);
            let got = fingerprint(&output);
            if got != expected {
                failures.push(format!(
                    "{} ({path}): got ({}, {:#018x}), expected ({}, {:#018x})",
                    case.name, got.0, got.1, expected.0, expected.1
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn validate_any(output: &[u8]) {
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(output)
        .expect("output validates");
}

fn example(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn outputs_of_hand_written_inputs_are_unchanged() {
    check(vec![
        Case {
            name: "examples/primes.wat",
            input: example("primes.wat"),
            args: &[],
            wasi: false,
            recorded_input: None,
            expected: (1_033_756, 0xde8b_3abc_090b_727a),
        },
        Case {
            name: "examples/primes.core.wat",
            input: example("primes.core.wat"),
            args: &[],
            wasi: false,
            recorded_input: None,
            expected: (1_033_578, 0x38a2_60a5_919c_f366),
        },
        Case {
            name: "every kind of state",
            input: STATE.as_bytes().to_vec(),
            args: &[],
            wasi: false,
            recorded_input: None,
            expected: (41_023, 0x7c7b_633b_bab5_7df0),
        },
        Case {
            name: "every kind of state, init kept",
            input: STATE.as_bytes().to_vec(),
            args: &["--keep-init-func"],
            wasi: false,
            recorded_input: None,
            expected: (41_042, 0x0c9c_3f3a_936a_7cb5),
        },
        Case {
            name: "nested components",
            input: nested().into_bytes(),
            args: &[],
            wasi: false,
            recorded_input: None,
            expected: (1_139, 0x2289_4059_62dc_b220),
        },
    ]);
}

#[test]
fn outputs_of_guest_programs_are_unchanged() {
    check(vec![
        Case {
            name: "regex-tables",
            input: wasip2_guest("regex-tables"),
            args: &["--wasi", "--reproducible"],
            wasi: true,
            recorded_input: Some((1_386_507, 0x9da7_5609_6222_876f)),
            expected: (1_908_339, 0x4568_a16b_3dbe_2215),
        },
        Case {
            name: "big-heap",
            input: wasip2_guest("big-heap"),
            args: &[],
            wasi: false,
            recorded_input: Some((63_890, 0x5f82_b338_9eb7_784a)),
            expected: (67_181_357, 0x4113_2966_d3b1_cde2),
        },
    ]);
}
