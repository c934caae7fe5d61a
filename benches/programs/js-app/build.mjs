// Makes the un-initialized parts of the componentize-js workload of
// `cargo bench --bench pre_init` (benches/pre_init/workloads.rs turns them
// into a component). componentize-js pre-initializes a core module with
// Wizer before it makes the component, so it never writes out an
// un-initialized component; this script stops before that step.
//
//   node build.mjs COMPONENTIZE_JS_DIR OUT_DIR
//
// OUT_DIR receives:
//   engine.wasm     StarlingMonkey with the bindings of world.wit spliced in
//                   (a core module; its export `componentize.wizer` is init)
//   app.js, initializer.js
//                   the sources init reads (OUT_DIR is preopened as `/`)
//   adapter.wasm    the WASI preview1 adapter (reactor) componentize-js uses
//   env.json        the environment init reads its configuration from
import { readFile, writeFile, copyFile, mkdir } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [componentizeJs, outDir] = process.argv.slice(2).map((p) => resolve(p));
if (!componentizeJs || !outDir) {
  console.error('usage: node build.mjs COMPONENTIZE_JS_DIR OUT_DIR');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const load = (rel) => import(pathToFileURL(join(componentizeJs, rel)).href);
const { splicer } = await load('lib/spidermonkey-embedding-splicer.js');

// The features of `componentize-js --disable http fetch-event`: the app
// makes no HTTP requests, and the bench's hosts have no wasi:http.
// componentize-js stubs out the imports of disabled features (and the
// environment and filesystem, which its init reads) after its Wizer step;
// here the component is made before init, so the bench stubs out only
// wasi:http and wasi:sockets (benches/pre_init/workloads.rs).
const features = ['stdio', 'random', 'clocks'];
const wit = join(here, 'world.wit');
const engine = await readFile(join(componentizeJs, 'lib', 'starlingmonkey_embedding.wasm'));
const spliced = splicer.spliceBindings(engine, features, undefined, wit, 'app', false);

await mkdir(outDir, { recursive: true });
await writeFile(join(outDir, 'engine.wasm'), spliced.wasm);
await writeFile(join(outDir, 'initializer.js'), spliced.jsBindings);
await copyFile(join(here, 'app.js'), join(outDir, 'app.js'));
// (jco's, which componentize-js depends on and installs beside itself)
await copyFile(
  join(componentizeJs, '..', 'jco', 'lib', 'wasi_snapshot_preview1.reactor.wasm'),
  join(outDir, 'adapter.wasm'),
);

// What the engine's init reads: the exports and imports the bindings have
// (by index), and its command line. componentize-js writes the command
// line to Wizer's stdin; init reads STARLINGMONKEY_CONFIG when stdin is
// empty, and both tools give init an empty stdin.
const env = {
  SOURCE_NAME: 'app.js',
  DEBUG: '',
  FEATURE_CLOCKS: features.includes('clocks') ? '1' : '',
  EXPORT_CNT: String(spliced.exports.length),
  IMPORT_CNT: String(spliced.imports.length),
  STARLINGMONKEY_CONFIG: '--initializer-script-path /initializer.js --strip-path-prefix / app.js',
};
spliced.exports.forEach(([name, fn], i) => {
  env[`EXPORT${i}_NAME`] = name;
  env[`EXPORT${i}_ARGS`] = (fn.paramptr ? '*' : '') + fn.params.join(',');
  env[`EXPORT${i}_RET`] = (fn.retptr ? '*' : '') + (fn.ret ?? '');
  env[`EXPORT${i}_RETSIZE`] = String(fn.retsize);
});
spliced.imports.forEach(([, name, argc], i) => {
  env[`IMPORT${i}_NAME`] = name;
  env[`IMPORT${i}_ARGCNT`] = String(argc);
});
await writeFile(join(outDir, 'env.json'), JSON.stringify(env, null, 2) + '\n');
