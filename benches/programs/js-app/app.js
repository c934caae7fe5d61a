// The JS workload of `cargo bench --bench pre_init`. Everything at the top
// level runs during pre-initialization; `probe` and `lookup` only read what
// it left behind.

// A sieve of primes below 2^20.
const LIMIT = 1 << 20;
const composite = new Uint8Array(LIMIT);
const primes = [];
for (let i = 2; i < LIMIT; i++) {
  if (!composite[i]) {
    primes.push(i);
    for (let j = i * i; j < LIMIT; j += i) composite[j] = 1;
  }
}

// 20000 generated words, each mapped to a number, in a Map and an object.
const syllables = ['ka', 'lo', 'mi', 'nu', 'pe', 'ra', 'si', 'to', 'vu', 'ze'];
const words = new Map();
const byInitial = {};
let seed = 0x9e3779b9;
function next() {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}
for (let i = 0; i < 20000; i++) {
  let word = '';
  for (let n = 2 + (next() % 4); n > 0; n--) word += syllables[next() % syllables.length];
  words.set(word, primes[i % primes.length]);
  (byInitial[word[0]] ??= []).push(word);
}

// Regular expressions, compiled once.
const patterns = [/^(ka|lo)+$/, /(mi|nu){2,}/, /ze$/, /^[a-z]{4,8}$/].map((re) => ({
  re,
  count: [...words.keys()].filter((w) => re.test(w)).length,
}));

// A JSON document, built and parsed again.
const config = JSON.parse(
  JSON.stringify({
    name: 'js-app',
    primes: primes.slice(0, 1000),
    initials: Object.keys(byInitial).sort(),
  }),
);

function checksum() {
  let sum = primes.length + words.size + config.primes.length;
  for (const { count } of patterns) sum = (sum * 31 + count) >>> 0;
  for (const [word, value] of words) {
    if (word.length === 6) sum = (sum * 31 + value) >>> 0;
  }
  return sum;
}

// Computed here, at the top level: `probe` must not do init's work.
const CHECKSUM = checksum();

export function probe() {
  return (CHECKSUM + words.size) >>> 0;
}

export function lookup(word) {
  return words.get(word);
}
