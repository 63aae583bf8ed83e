//! The inputs of nested writes (`graphql::nested`): on a create input, one field per
//! `hasMany` / `hasOne` relation whose rows may be created with it, typed
//! `XCreateNestedManyWithoutRelInput { create, connect }` (or `...NestedOne...`), whose
//! `create` takes `XCreateWithoutRelInput`: the related entity's create fields but the
//! reference the parent fills in.

use async_graphql::dynamic::{InputObject, InputValue, TypeRef};
use heck::ToUpperCamelCase;

use crate::graphql::meta::{EntityMeta, LinkKind, Metadata, RelationLink};
use crate::graphql::nested::{connectable, nestable, parent_relation};
use crate::graphql::schema::Registry;

/// `ForumPost` + `thread`: `("ForumPostCreateWithoutThreadInput", "ForumPostCreateNestedManyWithoutThreadInput")`.
fn names(link: &RelationLink) -> (String, String) {
    let rel = parent_relation(link).map_or_else(String::new, |r| r.to_upper_camel_case());
    let t = link.target.name;
    let kind = if link.kind == LinkKind::Child {
        "One"
    } else {
        "Many"
    };
    (
        format!("{t}CreateWithout{rel}Input"),
        format!("{t}CreateNested{kind}Without{rel}Input"),
    )
}

/// The nested-write fields of `meta`'s create inputs.
pub fn fields(m: &'static Metadata, meta: &'static EntityMeta) -> Vec<InputValue> {
    m.links(meta)
        .iter()
        .filter(|l| nestable(m, l))
        .map(|link| {
            let (_, nested) = names(link);
            InputValue::new(link.name, TypeRef::named(nested)).description(format!(
                "{} rows to create with this one (their `{}` is set to it){}, in the same transaction.",
                link.target.name,
                link.fk_field,
                if connectable(m, link) {
                    ", or existing ones to connect to it"
                } else {
                    ""
                }
            ))
        })
        .collect()
}

/// The input types of the nested writes from `meta` to its related entities.
pub fn register(r: &mut Registry, m: &'static Metadata, meta: &'static EntityMeta) {
    for link in m.links(meta).iter().filter(|l| nestable(m, l)) {
        let target = link.target;
        let Some(def) = m.definition(target.name) else {
            continue;
        };
        let (without, nested) = names(link);
        let mut o = InputObject::new(&without).description(format!(
            "The fields of a new {} created with its {} (which sets `{}`).",
            target.name, meta.name, link.fk_field
        ));
        for v in super::entity::create_fields(m, target, def, Some(link.fk)) {
            o = o.field(v);
        }
        r.add(o);
        let one = link.kind == LinkKind::Child;
        let mut n = InputObject::new(&nested)
            .description(format!(
                "{} rows written with their {}.",
                target.name, meta.name
            ))
            .field(
                InputValue::new(
                    "create",
                    if one {
                        TypeRef::named(&without)
                    } else {
                        TypeRef::named_nn_list(&without)
                    },
                )
                .description("New rows, created after this one."),
            );
        if connectable(m, link) {
            n = n.field(
                InputValue::new(
                    "connect",
                    if one {
                        TypeRef::named(TypeRef::ID)
                    } else {
                        TypeRef::named_nn_list(TypeRef::ID)
                    },
                )
                .description(format!(
                    "Existing {} rows (by id) whose `{}` is set to the new row; each must be one you may update.",
                    target.name, link.fk_field
                )),
            );
        }
        r.add(n);
    }
}
