// Module top level: ComponentizeJS evaluates this while pre-initializing
// (in Wizer's init function, `componentize.wizer`), so the component starts
// with `table` and `summary` already built.
const words = 'the quick brown fox jumps over the lazy dog the end'.split(' ');
const table = new Map();
for (const word of words) {
  table.set(word, (table.get(word) ?? 0) + 1);
}
let squares = 0;
for (let i = 0; i < 1000; i++) {
  squares += i * i;
}
const summary = `${table.size} distinct of ${words.length} words, "the" x${table.get('the')}, sum of squares ${squares}`;

// When the top level ran, in milliseconds since the epoch: frozen into the
// component, it tells build time from run time.
const evaluatedAt = Date.now();

let helloCalls = 0;

export function hello(name) {
  helloCalls += 1;
  return `Hello, ${name}! (${summary.length})`;
}

export function computed() {
  return summary;
}

export function calls() {
  return helloCalls;
}

export function evaluatedAtMs() {
  return BigInt(evaluatedAt);
}
