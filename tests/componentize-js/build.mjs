// Makes the component of app.js with ComponentizeJS, pre-initialized by the
// default Wizer (ComponentizeJS's own @bytecodealliance/wizer) or by the
// Wizer-compatible binary given:
//
//   node build.mjs OUT.wasm [WIZER_BIN]
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { componentize } from '@bytecodealliance/componentize-js';

const here = dirname(fileURLToPath(import.meta.url));
const [out, wizerBin] = process.argv.slice(2);
if (!out) {
  throw new Error('usage: node build.mjs OUT.wasm [WIZER_BIN]');
}

const { component } = await componentize({
  sourcePath: join(here, 'app.js'),
  witPath: join(here, 'world.wit'),
  worldName: 'hello',
  disableFeatures: ['http', 'fetch-event'],
  ...(wizerBin ? { wizerBin } : {}),
});
await writeFile(out, component);
