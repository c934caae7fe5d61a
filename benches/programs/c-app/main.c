/*
 * An ordinary C program (wasi-libc, made into a component with the WASI
 * preview1 adapter) whose init builds the kind of state C programs build at
 * startup: a chained hash table of malloc'd entries with strdup'd keys, a
 * sorted index of them, a string built with snprintf and a few statics. The
 * heap it leaves behind is many short non-zero runs (malloc headers,
 * pointers, short strings) separated by short stretches of zeros.
 *
 * Built by benches/pre_init/workloads.rs (`c_app`):
 *   clang --target=wasm32-wasi --sysroot=SYSROOT -O2 -mexec-model=reactor \
 *     main.c -o c-app.core.wasm
 * then made into a component with wit-component (world.wit embedded) and
 * the preview1 reactor adapter. The exports are named as the world's
 * functions, which is how wit-component finds them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *key;
    uint32_t value;
    double weight;
    struct entry *next;
};

#define BUCKETS 509
#define WORDS 700

static struct entry *table[BUCKETS];
static struct entry **sorted;
static size_t count;
static char *banner;
static uint32_t lengths[32];
static int initialized;

static const char *const syllables[] = {
    "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "xe", "zu", "an", "or", "bel", "dor", "quin",
};

static uint32_t hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 16777619u;
    }
    return h;
}

static struct entry *find(const char *key) {
    for (struct entry *e = table[hash(key) % BUCKETS]; e; e = e->next) {
        if (strcmp(e->key, key) == 0) {
            return e;
        }
    }
    return NULL;
}

static void insert(const char *key, uint32_t value) {
    struct entry *e = find(key);
    if (e) {
        e->value += value;
        e->weight += 1.0;
        return;
    }
    e = malloc(sizeof *e);
    e->key = strdup(key);
    e->value = value;
    e->weight = 1.0 / (double)(value % 1000 + 1);
    uint32_t b = hash(key) % BUCKETS;
    e->next = table[b];
    table[b] = e;
    count++;
}

static int by_key(const void *a, const void *b) {
    return strcmp((*(struct entry *const *)a)->key, (*(struct entry *const *)b)->key);
}

__attribute__((export_name("component-init"))) void component_init(void) {
    uint32_t x = 0x2545f491u;
    char word[64];
    for (int i = 0; i < WORDS; i++) {
        size_t len = 0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        int parts = 2 + (int)(x % 4);
        for (int p = 0; p < parts; p++) {
            const char *s = syllables[(x >> (4 * p)) % (sizeof syllables / sizeof *syllables)];
            size_t n = strlen(s);
            memcpy(word + len, s, n);
            len += n;
        }
        if (x % 3 == 0) {
            len += (size_t)snprintf(word + len, sizeof word - len, "%u", (unsigned)(x % 97));
        }
        word[len] = 0;
        insert(word, x);
        lengths[len % 32]++;
    }
    sorted = malloc(count * sizeof *sorted);
    size_t n = 0;
    for (size_t b = 0; b < BUCKETS; b++) {
        for (struct entry *e = table[b]; e; e = e->next) {
            sorted[n++] = e;
        }
    }
    qsort(sorted, n, sizeof *sorted, by_key);
    size_t size = 64;
    banner = malloc(size);
    snprintf(banner, size, "%zu words, %s..%s", count, sorted[0]->key, sorted[count - 1]->key);
    initialized = 1;
}

__attribute__((export_name("probe"))) uint32_t probe(void) {
    if (!initialized) {
        return 0;
    }
    uint32_t sum = (uint32_t)count;
    for (size_t i = 0; i < count; i += 7) {
        const struct entry *e = find(sorted[i]->key);
        sum = sum * 31 + (e ? e->value + (uint32_t)(e->weight * 1000.0) : 0);
    }
    for (size_t i = 0; i < 32; i++) {
        sum = sum * 17 + lengths[i];
    }
    return sum + hash(banner);
}
