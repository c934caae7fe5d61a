// Makes the component of app.js with ComponentizeJS as its users do
// (`componentize()` from Node, run in the app's directory), with
// `wizerBin` pointing at a wrapper that benches/pre_init/modules.rs writes:
// the wrapper keeps aside what ComponentizeJS hands Wizer (the spliced
// StarlingMonkey core module, the command line, stdin, the environment and
// the preopened sources) and then runs the real Wizer, so that the build
// completes as it would without it.
//
//   cd APP_DIR && node capture.mjs COMPONENTIZE_JS_DIR WIZER_BIN OUT.wasm
//
// APP_DIR holds app.js and world.wit (copies of this directory's).
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { cwd } from 'node:process';
import { pathToFileURL } from 'node:url';

const [componentizeJs, wizerBin, out] = process.argv.slice(2);
if (!componentizeJs || !wizerBin || !out) {
  console.error('usage: node capture.mjs COMPONENTIZE_JS_DIR WIZER_BIN OUT.wasm');
  process.exit(2);
}
const { componentize } = await import(
  pathToFileURL(join(resolve(componentizeJs), 'src', 'componentize.js')).href
);
const { component } = await componentize({
  sourcePath: join(cwd(), 'app.js'),
  witPath: join(cwd(), 'world.wit'),
  worldName: 'app',
  // as the component bench's build.mjs: no HTTP
  disableFeatures: ['http', 'fetch-event'],
  wizerBin: resolve(wizerBin),
});
await writeFile(resolve(out), component);
