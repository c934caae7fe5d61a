//! Hostile inputs: arbitrary bytes, mutated valid components, arbitrary
//! snapshots and tampered plans, fed to `parse`, `instrument` and
//! `Plan::apply`. None may panic; what `instrument` returns must validate;
//! what `apply` returns for an untampered plan must validate (an error that
//! says the rewrite produced an invalid component counts as a bug too).
//!
//! Shared by the `no_panic` fuzz target and the `hostile_inputs` test, like
//! `oracle.rs`, which it uses to generate valid components.

use arbitrary::Unstructured;
use component_init::State;
use component_init::{GlobalValue, InitFunc, InstrumentOptions, Plan, Snapshot, Value};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{common, oracle};

/// Hand-written components with the shapes component-init handles: shared
/// memories between modules, start functions, passive segments and
/// `data.drop`, `v128`, memory64 and custom page sizes, an init function in
/// an interface, table instructions.
const SEEDS: &[&str] = &[
    include_str!("../../examples/primes.wat"),
    r#"(component
  (core module $m
    (memory (export "memory") 1 4)
    (memory $b i64 1 2)
    (memory $c 3 10 (pagesize 1))
    (global $g (mut i32) (i32.const 7))
    (global $h (mut f64) (f64.const nan:0x4))
    (global $v (mut v128) (v128.const i64x2 1 2))
    (global $k i32 (i32.const 1))
    (table 2 funcref)
    (elem declare func $init)
    (data $p "passive")
    (data (i32.const 8) "active")
    (data (memory $c) (i32.const 1) "xy")
    (func $start (global.set $g (i32.add (global.get $g) (i32.const 1))))
    (start $start)
    (func $init (export "init")
      (memory.init $p (i32.const 100) (i32.const 0) (i32.const 7))
      (data.drop $p)
      (i64.store $b (i64.const 16) (i64.const -1))
      (i32.store8 $c (i32.const 2) (i32.const 9))
      (global.set $v (v128.const i64x2 3 4)))
    (func (export "grow") (result i32) (memory.grow (i32.const 1)))
    (func (export "tab") (table.set (i32.const 0) (ref.func $init)))
    (func (export "get") (result i32) (i32.load (i32.const 100))))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "get") (result s32) (canon lift (core func $i "get")))
  (func (export "grow") (result s32) (canon lift (core func $i "grow")))
  (func (export "tab") (canon lift (core func $i "tab"))))"#,
    r#"(component
  (core module $main
    (memory (export "memory") 1)
    (global $sp (mut i32) (i32.const 1024))
    (func (export "init") (global.set $sp (i32.const 2048)) (i32.store (i32.const 0) (i32.const 77)))
    (func (export "get") (result i32) (i32.add (i32.load (i32.const 0)) (global.get $sp))))
  (core module $adapter
    (import "env" "memory" (memory 0))
    (global $total (mut i64) (i64.const 0))
    (func (export "log") (param i32)
      (global.set $total (i64.add (global.get $total) (i64.extend_i32_u (local.get 0))))
      (i32.store (i32.const 4) (local.get 0))))
  (core instance $main (instantiate $main))
  (core instance $env (export "memory" (memory $main "memory")))
  (core instance $adapter (instantiate $adapter (with "env" (instance $env))))
  (core instance $again (instantiate $adapter (with "env" (instance $env))))
  (type $f (func))
  (func $init (type $f) (canon lift (core func $main "init")))
  (instance $setup (export "init" (func $init)))
  (export "my:app/setup" (instance $setup))
  (func (export "get") (result s32) (canon lift (core func $main "get"))))"#,
    r#"(component
  (component $nested
    (core module $m (func (export "f")))
    (core instance $i (instantiate $m))
    (func (export "f") (canon lift (core func $i "f"))))
  (instance $n (instantiate $nested))
  (core module $m (global (export "g") (mut i32) (i32.const 0)) (func (export "init") (global.set 0 (i32.const 1))))
  (core instance $i (instantiate $m))
  (func (export "wizer-initialize") (canon lift (core func $i "init"))))"#,
];

/// What one hostile case exercised.
pub type Exercised = &'static str;

fn guard<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{what} panicked: {msg}")
    })
}

fn validates(bytes: &[u8]) -> Result<(), String> {
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(bytes)
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

/// A valid component: a hand-written one or a generated one.
fn valid_component(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<Vec<u8>>> {
    if u.ratio(1, 2)? {
        let text = SEEDS[u.choose_index(SEEDS.len())?];
        Ok(Some(wat::parse_str(text).expect("seed components parse")))
    } else {
        Ok(oracle::generate(u).ok().flatten().map(|c| c.component))
    }
}

fn options(u: &mut Unstructured<'_>) -> arbitrary::Result<InstrumentOptions> {
    Ok(InstrumentOptions {
        keep_init_func: u.ratio(1, 4)?,
        init_func: match u.int_in_range(0..=5)? {
            0 => InitFunc::parse(u.arbitrary::<&str>()?).ok(),
            1 => InitFunc::parse("my:app/setup#init").ok(),
            2 => InitFunc::parse("wizer-initialize").ok(),
            _ => None,
        },
    })
}

fn global_value(u: &mut Unstructured<'_>) -> arbitrary::Result<GlobalValue> {
    Ok(match u.int_in_range(0..=4)? {
        0 => GlobalValue::I32(u.arbitrary()?),
        1 => GlobalValue::I64(u.arbitrary()?),
        2 => GlobalValue::F32(u.arbitrary()?),
        3 => GlobalValue::F64(u.arbitrary()?),
        _ => GlobalValue::V128(u.arbitrary()?),
    })
}

/// A snapshot for `plan`: mostly of the right shape (whole pages, the
/// accessor's global type), with arbitrary contents; sometimes not.
fn snapshot(plan: &Plan, u: &mut Unstructured<'_>) -> arbitrary::Result<Snapshot> {
    let mut values = Vec::new();
    for accessor in &plan.accessors {
        let honest = u.ratio(7, 8)?;
        let value = match accessor.state {
            State::Memory { page_size_log2, .. } if honest => {
                let page = 1usize << page_size_log2.min(16);
                let pages = u.int_in_range(0..=3)?;
                let mut bytes = vec![0; pages * page];
                for _ in 0..u.int_in_range(0..=8)? {
                    if bytes.is_empty() {
                        break;
                    }
                    let at = u.choose_index(bytes.len())?;
                    bytes[at] = u.arbitrary()?;
                }
                Value::Memory(bytes.into())
            }
            State::Global { ty, .. } if honest => Value::Global(match ty {
                component_init::ScalarType::I32 => GlobalValue::I32(u.arbitrary()?),
                component_init::ScalarType::I64 => GlobalValue::I64(u.arbitrary()?),
                component_init::ScalarType::F32 => GlobalValue::F32(u.arbitrary()?),
                component_init::ScalarType::F64 => GlobalValue::F64(u.arbitrary()?),
                component_init::ScalarType::V128 => GlobalValue::V128(u.arbitrary()?),
            }),
            State::Probe { .. } if honest => Value::Global(GlobalValue::I32(if u.ratio(3, 4)? {
                0
            } else {
                u.arbitrary()?
            })),
            _ if u.arbitrary()? => Value::Memory(u.arbitrary::<&[u8]>()?.into()),
            _ => Value::Global(global_value(u)?),
        };
        values.push(value);
    }
    if u.ratio(1, 32)? {
        values.pop();
    }
    Ok(Snapshot { values })
}

/// Tampers with a plan, as one read back from a file might be.
fn tamper(plan: &mut Plan, u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    for _ in 0..u.int_in_range(1..=3)? {
        match u.int_in_range(0..=5)? {
            0 => plan.remove_init_export = !plan.remove_init_export,
            1 => plan.init.name = u.arbitrary::<&str>()?.to_string(),
            2 => plan.interface = u.arbitrary::<&str>()?.to_string(),
            _ if plan.accessors.is_empty() => {}
            3 => {
                let i = u.choose_index(plan.accessors.len())?;
                plan.accessors[i].instance = u.int_in_range(0..=8)?;
            }
            4 => {
                let i = u.choose_index(plan.accessors.len())?;
                plan.accessors[i].module = u.int_in_range(0..=8)?;
            }
            _ => {
                let i = u.choose_index(plan.accessors.len())?;
                let index = u.int_in_range(0..=8)?;
                match &mut plan.accessors[i].state {
                    State::Memory { index: m, .. } => *m = index,
                    State::Global { index: g, .. } => *g = index,
                    State::Probe { index: p, .. } => *p = index,
                    State::Table { index: t } => *t = index,
                    State::RefGlobal { index: g } => *g = index,
                }
            }
        }
    }
    Ok(())
}

/// One hostile case from `u`. `Ok` names what it exercised; `Err` is a bug.
pub fn check(u: &mut Unstructured<'_>) -> Result<Exercised, String> {
    let (mut bytes, mut what) = match u.int_in_range(0..=3).unwrap_or(0) {
        0 => {
            let mut bytes = Vec::new();
            if u.arbitrary().unwrap_or(false) {
                // a component header, to get past the first check
                bytes.extend_from_slice(b"\0asm\x0d\x00\x01\x00");
            }
            bytes.extend_from_slice(u.arbitrary::<&[u8]>().unwrap_or_default());
            (bytes, "arbitrary bytes")
        }
        mode => match valid_component(u) {
            Ok(Some(bytes)) if mode == 1 => (bytes, "valid component"),
            Ok(Some(bytes)) => (bytes, "mutated component"),
            _ => return Ok("no input"),
        },
    };
    if what == "mutated component" {
        common::mutate(&mut bytes, u, false).ok();
    }
    guard("parse", || {
        component_init::__internal::parse(&bytes).map(|_| ())
    })?
    .ok();
    let options = options(u).unwrap_or_default();
    let instrumented = match guard("instrument", || {
        component_init::instrument(&bytes, &options)
    })? {
        Ok(i) => i,
        Err(_) => return Ok(what),
    };
    validates(&instrumented.component)
        .map_err(|e| format!("instrument returned an invalid component ({what}): {e}"))?;
    let mut plan = instrumented.plan;
    let tampered = u.ratio(1, 4).unwrap_or(false);
    if tampered {
        tamper(&mut plan, u).ok();
        what = "tampered plan";
    }
    let Ok(snapshot) = snapshot(&plan, u) else {
        return Ok(what);
    };
    match guard("Plan::apply", || plan.apply(&bytes, &snapshot))? {
        Ok(out) => validates(&out)
            .map_err(|e| format!("Plan::apply returned an invalid component ({what}): {e}"))?,
        Err(e) => {
            let msg = format!("{e:#}");
            if !tampered && msg.contains("does not validate") {
                return Err(format!(
                    "Plan::apply produced an invalid component ({what}): {msg}"
                ));
            }
        }
    }
    Ok(what)
}
