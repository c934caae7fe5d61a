// c-callbacks: a callback registry in C whose init changes the funcref table.
//
// Like an interpreter registering its builtins, or Emscripten's addFunction:
// init appends callbacks to the function table (`__indirect_function_table`,
// which C function pointers index) with `table.grow`, fills two reserved
// slots (`table.fill`) and overwrites one (`table.set`), tests a plugin
// through its new slot and clears it (`table.fill` with null), keeping the
// slots in linear memory; the exports call them by slot (`call_indirect`).
// The element segment holds only the address-taken functions: the table
// grows when init runs, not at link time. No libc, no imports.
//
// Built by tests/all/c_guests.rs with Zig's clang (PyPI `ziglang`):
//
//   python3 -m ziglang cc --target=wasm32-freestanding \
//     -mcpu=generic+reference_types -O2 -g0 -nostdlib \
//     -Wl,--no-entry -Wl,--growable-table -o c-callbacks.wasm callbacks.c
//
// (`--growable-table`: wasm-ld otherwise caps the table at its size.) clang's
// `__builtin_wasm_table_*` take externref tables only: with a `__funcref`
// element type, `static funcref_t t[0]` is "not a WebAssembly table" (clang
// 22 here, reported for 17 and 19), so the table instructions are inline
// assembly.

typedef int (*callback)(int);

// What `dispatch` answers for a callback that is not registered: before
// init, every one.
#define NOT_REGISTERED (-2147483647 - 1)
#define MAX_CALLBACKS 16

// The table's declaration, which every inline assembly block that names it
// repeats.
#define TABLE ".tabletype __indirect_function_table, funcref\n"

// The callbacks: builtins, and two kept for later.
static int twice(int x) { return 2 * x; }
static int square(int x) { return x * x; }
static int negate(int x) { return -x; }
static int add_seven(int x) { return x + 7; }
static int cube(int x) { return x * x * x; }
static int clamp_byte(int x) { return x < 0 ? 0 : x > 255 ? 255 : x; }
static int probe(int x) { return x + 1; }

static const callback builtins[] = {twice, square, negate, add_seven};

// The registry, in linear memory.
static struct {
  int initialized;
  int count;
  int slots[MAX_CALLBACKS];
  // The slot init cleared after its self-test, -1 until then.
  int cleared;
} registry = {0, 0, {0}, -1};

// Appends `f` (a function pointer: its slot in the table) at the end of the
// table: `table.get` its reference, `table.grow` by one slot holding it.
// Returns the new slot.
static int table_append(callback f) {
  int slot;
  __asm__ volatile(TABLE
                   "local.get %1\n"
                   "table.get __indirect_function_table\n"
                   "i32.const 1\n"
                   "table.grow __indirect_function_table\n"
                   "local.set %0"
                   : "=r"(slot)
                   : "r"(f));
  if (slot < 0)
    __builtin_trap();
  return slot;
}

// Grows the table by `n` null slots; returns the first.
static int table_reserve(int n) {
  int slot;
  __asm__ volatile(TABLE
                   "ref.null_func\n"
                   "local.get %1\n"
                   "table.grow __indirect_function_table\n"
                   "local.set %0"
                   : "=r"(slot)
                   : "r"(n));
  if (slot < 0)
    __builtin_trap();
  return slot;
}

// Slot `slot` holds `f`: `table.set`.
static void table_put(int slot, callback f) {
  __asm__ volatile(TABLE
                   "local.get %0\n"
                   "local.get %1\n"
                   "table.get __indirect_function_table\n"
                   "table.set __indirect_function_table"
                   :
                   : "r"(slot), "r"(f));
}

// `n` slots from `slot` hold `f`: `table.fill`.
static void table_fill(int slot, callback f, int n) {
  __asm__ volatile(TABLE
                   "local.get %0\n"
                   "local.get %1\n"
                   "table.get __indirect_function_table\n"
                   "local.get %2\n"
                   "table.fill __indirect_function_table"
                   :
                   : "r"(slot), "r"(f), "r"(n));
}

// `n` slots from `slot` become null: `table.fill` with `ref.null func`.
static void table_clear(int slot, int n) {
  __asm__ volatile(TABLE
                   "local.get %0\n"
                   "ref.null_func\n"
                   "local.get %1\n"
                   "table.fill __indirect_function_table"
                   :
                   : "r"(slot), "r"(n));
}

static int table_size(void) {
  int size;
  __asm__ volatile(TABLE
                   "table.size __indirect_function_table\n"
                   "local.set %0"
                   : "=r"(size));
  return size;
}

static int table_slot_is_null(int slot) {
  int null;
  __asm__ volatile(TABLE
                   "local.get %1\n"
                   "table.get __indirect_function_table\n"
                   "ref.is_null\n"
                   "local.set %0"
                   : "=r"(null)
                   : "r"(slot));
  return null;
}

static void add(int slot) { registry.slots[registry.count++] = slot; }

// Registers the callbacks, once: a second call changes nothing.
static void register_callbacks(void) {
  if (registry.initialized)
    return;
  // The builtins, one slot each at the end of the table.
  for (unsigned i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
    add(table_append(builtins[i]));
  // A plugin that is loaded, tested through its new slot, and unloaded:
  // its slot stays, null.
  int plugin = table_append(probe);
  if (((callback)plugin)(41) != 42)
    __builtin_trap();
  table_clear(plugin, 1);
  registry.cleared = plugin;
  // Two slots reserved in one grow, both filled with `cube`; the second
  // is then overwritten with `clamp_byte`.
  int reserved = table_reserve(2);
  table_fill(reserved, cube, 2);
  table_put(reserved + 1, clamp_byte);
  add(reserved);
  add(reserved + 1);
  registry.initialized = 1;
}

// Init, under the name Wizer looks for and under a plain one.
__attribute__((export_name("wizer.initialize"))) void wizer_initialize(void) {
  register_callbacks();
}

__attribute__((export_name("init"))) void init(void) { register_callbacks(); }

// How many callbacks are registered: 0 before init.
__attribute__((export_name("registered"))) int registered(void) {
  return registry.count;
}

// Calls the `n`-th registered callback with `x`, through its slot;
// NOT_REGISTERED when there is none.
__attribute__((export_name("dispatch"))) int dispatch(int n, int x) {
  if (n < 0 || n >= registry.count)
    return NOT_REGISTERED;
  return ((callback)registry.slots[n])(x);
}

// The table slot of the `n`-th registered callback, -1 when there is none.
__attribute__((export_name("slot"))) int slot(int n) {
  if (n < 0 || n >= registry.count)
    return -1;
  return registry.slots[n];
}

// The slot init cleared, -1 before init.
__attribute__((export_name("cleared"))) int cleared(void) {
  return registry.cleared;
}

// The table's size.
__attribute__((export_name("table-size"))) int table_size_export(void) {
  return table_size();
}

// 1 when slot `slot` is null, 0 when it holds a function, -1 past the end.
__attribute__((export_name("is-null"))) int is_null(int slot) {
  if (slot < 0 || slot >= table_size())
    return -1;
  return table_slot_is_null(slot);
}
