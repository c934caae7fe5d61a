//! The component front end: the four phases for a component input, nested
//! components included, and what only components need (WIT, names, the
//! index allocator, the reader modules, staged retargeting).

pub mod append;
pub mod init_func;
pub mod instrument;
pub mod names;
pub mod parse;
pub mod readers;
pub mod retarget;
pub mod rewrite;
pub mod snapshot;
pub mod table_mode;
pub mod table_reader;
pub mod tables;
pub mod wit;
