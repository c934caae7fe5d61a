//! End-to-end tests: a component goes in, its exports are called before and
//! after pre-initialization, and the observed behaviour is compared.

mod seeds;
mod support;

mod async_guests;
mod async_model;
mod basics;
mod c_guests;
mod cache;
mod cli;
mod compilers;
mod component_tables;
mod componentize_py;
mod core_programs;
mod differential;
mod errors;
mod guests;
mod handles;
mod hostile;
mod identical_outputs;
mod init_args;
mod jco;
mod large_memory;
mod limits;
mod linking;
mod module_differential;
mod module_tables;
mod modules;
mod nested;
mod probes;
mod reproducible;
mod shapes;
mod split;
mod staged_tables;
mod state_kinds;
mod transform;
mod wasi;
mod wit;
