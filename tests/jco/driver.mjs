// Runs the middle of component-init's split pipeline in jco instead of
// Wasmtime: import the instrumented component transpiled by
// `jco transpile`, call the init function, then every accessor the plan
// lists, and write the snapshot file that `component-init apply` reads.
//
// usage: node driver.mjs TRANSPILED.js PLAN.json SNAPSHOT.bin
//
// Snapshot file format, version 2 (see `Snapshot::write_to` in src/plan.rs):
//   magic "CISNAP\0\x02", count u32 LE, then per accessor a tag byte and
//   its value: 6 sparse memory (u64 LE length, u64 LE run count, then per
//   non-zero run: u64 LE offset, u64 LE byte count, the bytes), 1 i32,
//   2 i64, 3 f32 bits, 4 f64 bits, 5 v128 (16 bytes), all little-endian.

import { readFile, writeFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const [modulePath, planPath, snapshotPath] = process.argv.slice(2);
if (!snapshotPath) {
  console.error("usage: node driver.mjs TRANSPILED.js PLAN.json SNAPSHOT.bin");
  process.exit(2);
}

const plan = JSON.parse(await readFile(planPath, "utf8"));
// A component whose code can change tables is read with `ref.test` and
// `call_ref` (function references and GC), which this Node may not have:
// `(module (type (func)) (func (param funcref) (result i32) (ref.test (ref 0) (local.get 0))))`
const tables = plan.accessors.some((a) => a.state.kind === "table" || a.state.kind === "ref-global");
const gc = WebAssembly.validate(new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 9, 2, 96, 0, 0, 96, 1, 112, 1, 127, 3, 2, 1, 1,
  10, 9, 1, 7, 0, 32, 0, 251, 20, 0, 11,
]));
if (tables && !gc) {
  console.error(
    `error: the instrumented component reads its tables with ref.test and call_ref ` +
      `(Wasm function references and GC), which Node ${process.version} does not ` +
      `provide; run the snapshot step in Wasmtime (\`component-init snapshot\`) or ` +
      `in a Node with Wasm GC (22 or later)`,
  );
  process.exit(1);
}
let component;
try {
  component = await import(pathToFileURL(resolve(modulePath)).href);
} catch (e) {
  // jco runs functions lifted `async` (the async component model, WASI 0.3)
  // through JSPI, which this Node may not have.
  if (String(e).includes("WebAssembly.promising")) {
    console.error(
      `error: jco runs this component's async functions with JSPI ` +
        `(WebAssembly.promising), which Node ${process.version} does not ` +
        `provide; run the snapshot step in a runtime with the async component ` +
        `model (\`component-init snapshot\`, Wasmtime) or in a Node with JSPI`,
    );
    process.exit(1);
  }
  throw e;
}

// jco names exports in lowerCamelCase; interfaces are exported both by
// their full name and by their plain name.
const camel = (name) => name.replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());
const instance = (name) => {
  const plain = name.replace(/^.*\//, "").replace(/@.*$/, "");
  const found = component[name] ?? component[camel(plain)];
  if (!found) throw new Error(`the component does not export \`${name}\``);
  return found;
};
const func = (owner, name, what) => {
  const f = owner[camel(name)];
  if (typeof f !== "function") throw new Error(`${what} \`${name}\` is not exported`);
  return f;
};

// 1. init
const initOwner = plan.init.interface ? instance(plan.init.interface) : component;
if (plan.init.args) {
  throw new Error("init arguments are not supported by this driver");
}
// an init lifted `async` returns a promise under JSPI
await func(initOwner, plan.init.name, "init function")();

// 2. every accessor, in plan order
const accessors = instance(plan.interface);
const CHUNK = 16 << 20;
const parts = [Buffer.from("CISNAP\0\x02", "latin1"), u32(plan.accessors.length)];
for (const accessor of plan.accessors) {
  const f = func(accessors, accessor.func, "accessor");
  const state = accessor.state;
  // tables and reference-typed globals read as memories of 8-byte slots
  if (state.kind === "memory" || state.kind === "table" || state.kind === "ref-global") {
    // only the non-zero runs are kept
    const runs = [];
    let length = 0n;
    for (;;) {
      const chunk = f(length, CHUNK);
      // a chunk may be short; the end is the first empty one
      if (chunk.byteLength === 0) break;
      for (let i = 0; i < chunk.byteLength; ) {
        if (chunk[i] === 0) {
          i++;
          continue;
        }
        let end = i;
        while (end < chunk.byteLength && chunk[end] !== 0) end++;
        const head = Buffer.alloc(16);
        head.writeBigUInt64LE(length + BigInt(i), 0);
        head.writeBigUInt64LE(BigInt(end - i), 8);
        runs.push(head, Buffer.from(chunk.slice(i, end)));
        i = end;
      }
      length += BigInt(chunk.byteLength);
    }
    const header = Buffer.alloc(17);
    header.writeUInt8(6, 0);
    header.writeBigUInt64LE(length, 1);
    header.writeBigUInt64LE(BigInt(runs.length / 2), 9);
    parts.push(header);
    for (const run of runs) parts.push(run);
  } else if (state.kind === "probe") {
    parts.push(tagged(1, 4, (b) => b.writeInt32LE(f(), 1)));
  } else {
    const value = f();
    switch (state.ty) {
      case "i32":
        parts.push(tagged(1, 4, (b) => b.writeInt32LE(value, 1)));
        break;
      case "i64":
        parts.push(tagged(2, 8, (b) => b.writeBigInt64LE(value, 1)));
        break;
      case "f32":
        parts.push(tagged(3, 4, (b) => b.writeFloatLE(value, 1)));
        break;
      case "f64":
        parts.push(tagged(4, 8, (b) => b.writeDoubleLE(value, 1)));
        break;
      case "v128": {
        const [low, high] = value;
        parts.push(tagged(5, 16, (b) => { b.writeBigUInt64LE(low, 1); b.writeBigUInt64LE(high, 9); }));
        break;
      }
      default:
        throw new Error(`unknown global type ${state.ty}`);
    }
  }
}
await writeFile(snapshotPath, Buffer.concat(parts));

function u32(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

function tagged(tag, size, write) {
  const b = Buffer.alloc(1 + size);
  b.writeUInt8(tag, 0);
  write(b);
  return b;
}
