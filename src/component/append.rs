//! The one index allocator: appending items to a component whose index
//! spaces already hold the original's items.
//!
//! An [`Appender`] starts from the validator's counts for the component it
//! appends to ([`Counts`]) and hands out each new index as it adds the item,
//! like wasm-encoder's `ComponentBuilder` (which always starts from zero, so
//! cannot append). Consecutive items of one kind share a section. Nothing
//! else in the crate computes an index of an appended item.

use anyhow::{Result, bail};
use wasm_encoder::{
    Alias, CanonicalFunctionSection, CanonicalOption, ComponentAliasSection, ComponentExportKind,
    ComponentExportSection, ComponentInstanceSection, ComponentSection, ComponentTypeSection,
    ComponentValType, ExportKind, InstanceSection, ModuleArg, ModuleSection, PrimitiveValType,
};

use crate::component::parse::Counts;

/// Sections appended after a component's last section, and the next free
/// index of every index space they add to.
pub(crate) struct Appender {
    first_free: Counts,
    bytes: Vec<u8>,
    open: Open,
}

/// The section being filled: items of one kind in a row share it.
enum Open {
    None,
    Aliases(ComponentAliasSection),
    CoreInstances(InstanceSection),
    Types(ComponentTypeSection),
    Canon(CanonicalFunctionSection),
    Instances(ComponentInstanceSection),
    Exports(ComponentExportSection),
}

/// One item of a core instance made of exports (`(name, kind, index)` in
/// wasm-encoder's terms).
pub(crate) struct CoreItem<'a> {
    pub name: &'a str,
    pub kind: ExportKind,
    pub index: u32,
}

macro_rules! section {
    ($self:ident, $variant:ident, $new:expr) => {{
        if !matches!($self.open, Open::$variant(_)) {
            $self.flush();
            $self.open = Open::$variant($new);
        }
        match &mut $self.open {
            Open::$variant(section) => section,
            _ => unreachable!("the section was opened just above"),
        }
    }};
}

impl Appender {
    /// An appender for a component whose index spaces hold `counts` items.
    pub(crate) fn new(counts: Counts) -> Appender {
        Appender {
            first_free: counts,
            bytes: Vec::new(),
            open: Open::None,
        }
    }

    /// The sections appended, each with its id and size: to be written after
    /// the component's last section.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.flush();
        self.bytes
    }

    fn flush(&mut self) {
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => {}
            Open::Aliases(s) => self.push(&s),
            Open::CoreInstances(s) => self.push(&s),
            Open::Types(s) => self.push(&s),
            Open::Canon(s) => self.push(&s),
            Open::Instances(s) => self.push(&s),
            Open::Exports(s) => self.push(&s),
        }
    }

    fn push(&mut self, section: &impl ComponentSection) {
        self.bytes.push(section.id());
        section.encode(&mut self.bytes);
    }

    /// Adds a core module; returns its index.
    pub(crate) fn core_module(&mut self, module: &wasm_encoder::Module) -> u32 {
        self.flush();
        self.push(&ModuleSection(module));
        take(&mut self.first_free.modules)
    }

    /// Aliases export `name` (a memory, global or function) of core instance
    /// `instance`; returns its index in the core index space of `kind`.
    pub(crate) fn alias_core_export(
        &mut self,
        instance: u32,
        kind: ExportKind,
        name: &str,
    ) -> Result<u32> {
        let space = match kind {
            ExportKind::Memory => &mut self.first_free.memories,
            ExportKind::Table => &mut self.first_free.tables,
            ExportKind::Global => &mut self.first_free.globals,
            ExportKind::Func => &mut self.first_free.core_funcs,
            other => bail!("internal error: no index space kept for aliased core {other:?}s"),
        };
        let index = take(space);
        section!(self, Aliases, ComponentAliasSection::new()).alias(Alias::CoreInstanceExport {
            instance,
            kind,
            name,
        });
        Ok(index)
    }

    /// Aliases export `name` (a function or an instance) of component
    /// instance `instance`; returns its index in the index space of `kind`.
    pub(crate) fn alias_export(
        &mut self,
        instance: u32,
        kind: ComponentExportKind,
        name: &str,
    ) -> Result<u32> {
        let index = take(self.component_space(kind)?);
        section!(self, Aliases, ComponentAliasSection::new()).alias(Alias::InstanceExport {
            instance,
            kind,
            name,
        });
        Ok(index)
    }

    /// Adds a core instance made of `items`; returns its index.
    pub(crate) fn core_instance_of(&mut self, items: &[CoreItem<'_>]) -> u32 {
        section!(self, CoreInstances, InstanceSection::new())
            .export_items(items.iter().map(|i| (i.name, i.kind, i.index)));
        take(&mut self.first_free.core_instances)
    }

    /// Instantiates core module `module` with each of `args` (import module
    /// name, core instance); returns the new core instance's index.
    pub(crate) fn core_instantiate(&mut self, module: u32, args: &[(&str, u32)]) -> u32 {
        section!(self, CoreInstances, InstanceSection::new()).instantiate(
            module,
            args.iter()
                .map(|(name, instance)| (*name, ModuleArg::Instance(*instance))),
        );
        take(&mut self.first_free.core_instances)
    }

    /// Adds the type `list<u8>`; returns its index.
    pub(crate) fn list_u8_type(&mut self) -> u32 {
        section!(self, Types, ComponentTypeSection::new())
            .defined_type()
            .list(ComponentValType::Primitive(PrimitiveValType::U8));
        take(&mut self.first_free.types)
    }

    /// Adds the tuple type of `fields`; returns its index.
    pub(crate) fn tuple_type(&mut self, fields: &[ComponentValType]) -> u32 {
        section!(self, Types, ComponentTypeSection::new())
            .defined_type()
            .tuple(fields.iter().copied());
        take(&mut self.first_free.types)
    }

    /// Adds a function type; returns its index.
    pub(crate) fn func_type(
        &mut self,
        params: &[(&str, ComponentValType)],
        result: Option<ComponentValType>,
    ) -> u32 {
        section!(self, Types, ComponentTypeSection::new())
            .function()
            .params(params.iter().copied())
            .result(result);
        take(&mut self.first_free.types)
    }

    /// Lifts core function `core_func` to component function type `ty`;
    /// returns the component function's index.
    pub(crate) fn lift(&mut self, core_func: u32, ty: u32, options: &[CanonicalOption]) -> u32 {
        section!(self, Canon, CanonicalFunctionSection::new()).lift(
            core_func,
            ty,
            options.iter().copied(),
        );
        take(&mut self.first_free.funcs)
    }

    /// Adds a component instance that exports the functions `funcs` (name,
    /// function index); returns its index.
    pub(crate) fn instance_of_funcs(&mut self, funcs: &[(&str, u32)]) -> u32 {
        section!(self, Instances, ComponentInstanceSection::new()).export_items(
            funcs
                .iter()
                .map(|&(name, index)| (name, ComponentExportKind::Func, index)),
        );
        take(&mut self.first_free.instances)
    }

    /// Exports item `index` of `kind` as `name`; returns the index the export
    /// itself defines in the index space of `kind`.
    pub(crate) fn export(
        &mut self,
        name: &str,
        kind: ComponentExportKind,
        index: u32,
    ) -> Result<u32> {
        let defined = take(self.component_space(kind)?);
        section!(self, Exports, ComponentExportSection::new()).export(name, kind, index, None);
        Ok(defined)
    }

    fn component_space(&mut self, kind: ComponentExportKind) -> Result<&mut u32> {
        Ok(match kind {
            ComponentExportKind::Func => &mut self.first_free.funcs,
            ComponentExportKind::Instance => &mut self.first_free.instances,
            other => bail!("internal error: no index space kept for component {other:?}s"),
        })
    }
}

/// Returns `*first_free` and moves it on by one.
fn take(first_free: &mut u32) -> u32 {
    *first_free += 1;
    *first_free - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Indices continue from the counts, per index space, and every item
    /// lands in the component: validated by appending to a real component.
    #[test]
    fn indices_continue_from_the_validators_counts() -> Result<()> {
        let original = wat::parse_str(
            r#"(component
                (core module $m (memory (export "mem") 1) (func (export "f") (result i32) i32.const 7))
                (core instance $i (instantiate $m))
                (type (list u8))
                (alias core export $i "f" (core func))
            )"#,
        )?;
        let types = wasmparser::Validator::new_with_features(crate::component::parse::features())
            .validate_all(&original)?;
        let counts = Counts::of(&types.as_ref());
        let mut app = Appender::new(counts);
        let f = app.alias_core_export(0, ExportKind::Func, "f")?;
        assert_eq!(f, 1, "the original aliased core function 0");
        let memory = app.alias_core_export(0, ExportKind::Memory, "mem")?;
        assert_eq!(memory, 0);
        let s32 = app.func_type(
            &[],
            Some(ComponentValType::Primitive(PrimitiveValType::S32)),
        );
        assert_eq!(s32, 1, "the original defined type 0");
        let lifted = app.lift(f, s32, &[]);
        assert_eq!(lifted, 0);
        let instance = app.instance_of_funcs(&[("get", lifted)]);
        assert_eq!(instance, 0);
        assert_eq!(
            app.export("api", ComponentExportKind::Instance, instance)?,
            1
        );
        assert_eq!(app.export("get", ComponentExportKind::Func, lifted)?, 1);
        let mut bytes = original;
        bytes.extend(app.finish());
        wasmparser::Validator::new_with_features(crate::component::parse::features())
            .validate_all(&bytes)?;
        Ok(())
    }

    #[test]
    fn spaces_it_does_not_keep_are_an_internal_error() {
        let mut app = Appender::new(Counts::default());
        let err = app
            .alias_core_export(0, ExportKind::Tag, "t")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("internal error"), "{err}");
    }
}
