//! The GraphQL face of one entity, from its metadata: the object type with its columns and
//! relations, its connection, edge and change types, its inputs (create, update, where,
//! orderBy, relation filter, unique keys) and its root fields, each resolved by the generic
//! operations of `crud` and `live`.

use async_graphql::dynamic::{
    Enum, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext,
    SubscriptionField, SubscriptionFieldFuture, TypeRef,
};
use async_graphql::Value as G;
use futures::StreamExt;
use gateway_catalog::model::{self as cat, FieldType};
use heck::ToShoutySnakeCase;
use heck::ToUpperCamelCase;

use crate::db::value::Value;
use crate::error::ApiError;
use crate::graphql::crud::{self, ListArgs, WriteScope, MAX_CREATE_ROWS};
use crate::graphql::filter;
use crate::graphql::meta::{ColumnMeta, ColumnType, EntityMeta, LinkKind, Metadata};
use crate::graphql::nested;
use crate::graphql::page::{Page, PageArgs};
use crate::graphql::row::{graphql_value, Row};
use crate::graphql::schema::forms::{insert_form, update_form};
use crate::graphql::schema::{
    arg, described, id_arg, int_arg, parent, ready, string_arg, Registry,
};
use crate::live;

/// The GraphQL name of a field's type, without list or non-null.
fn base_type(f: &cat::Field) -> String {
    match &f.ty {
        FieldType::String => TypeRef::STRING.into(),
        FieldType::Int => TypeRef::INT.into(),
        FieldType::BigInt => "BigInt".into(),
        FieldType::Float => TypeRef::FLOAT.into(),
        FieldType::Decimal => "Decimal".into(),
        FieldType::Boolean => TypeRef::BOOLEAN.into(),
        FieldType::Uuid => TypeRef::ID.into(),
        FieldType::Json => "JSON".into(),
        FieldType::DateTime => "DateTime".into(),
        FieldType::Enum(e) => e.clone(),
    }
}

/// `T`, `T!`, `[T!]` or `[T!]!`.
fn type_ref(f: &cat::Field, required: bool) -> TypeRef {
    let t = base_type(f);
    match (f.list, required) {
        (false, false) => TypeRef::named(t),
        (false, true) => TypeRef::named_nn(t),
        (true, false) => TypeRef::named_nn_list(t),
        (true, true) => TypeRef::named_nn_list_nn(t),
    }
}

fn filter_type(col: &ColumnMeta, f: &cat::Field) -> String {
    if col.list {
        return match col.ty {
            ColumnType::Uuid => "IDListFilter".into(),
            ColumnType::Int => "IntListFilter".into(),
            _ => "StringListFilter".into(),
        };
    }
    match &f.ty {
        FieldType::String => "StringFilter".into(),
        FieldType::Int => "IntFilter".into(),
        FieldType::BigInt => "BigIntFilter".into(),
        FieldType::Float => "FloatFilter".into(),
        FieldType::Decimal => "DecimalFilter".into(),
        FieldType::Boolean => "BooleanFilter".into(),
        FieldType::Uuid => "IDFilter".into(),
        FieldType::Json => "JSONFilter".into(),
        FieldType::DateTime => "DateTimeFilter".into(),
        FieldType::Enum(e) => format!("{e}Filter"),
    }
}

fn err<T>(e: ApiError) -> async_graphql::Result<T> {
    Err(e.into())
}

/// The list arguments of a root list or a relation connection.
fn list_args(meta: &'static EntityMeta, ctx: &ResolverContext<'_>) -> Result<ListArgs, ApiError> {
    Ok(ListArgs {
        filter: arg(ctx, "where")
            .map(|w| filter::where_filter(meta, w, "where"))
            .transpose()?,
        order: filter::order_by(meta, arg(ctx, "orderBy"))?,
        page: PageArgs {
            first: int_arg(ctx, "first"),
            after: string_arg(ctx, "after"),
            last: int_arg(ctx, "last"),
            before: string_arg(ctx, "before"),
        },
    })
}

/// `where`, `orderBy`, `first`, `after`, `last`, `before` on a field returning `meta`'s
/// connection.
fn with_list_arguments(f: Field, meta: &EntityMeta) -> Field {
    f.argument(InputValue::new(
        "where",
        TypeRef::named(format!("{}Where", meta.name)),
    ))
    .argument(InputValue::new(
        "orderBy",
        TypeRef::named_nn_list(format!("{}OrderBy", meta.name)),
    ))
    .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)))
    .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
    .argument(InputValue::new("last", TypeRef::named(TypeRef::INT)))
    .argument(InputValue::new("before", TypeRef::named(TypeRef::STRING)))
}

fn row_value(r: Row) -> FieldValue<'static> {
    FieldValue::owned_any(r)
}

fn rows_value(rows: Vec<Row>) -> FieldValue<'static> {
    FieldValue::list(rows.into_iter().map(FieldValue::owned_any))
}

/// The object type: one field per exposed column, then the relations, then what
/// hand-written modules add.
fn object(
    m: &'static Metadata,
    meta: &'static EntityMeta,
    def: &cat::Entity,
    extra: Vec<Field>,
) -> Object {
    let mut o = described(
        Object::new(meta.name),
        def.description.as_deref(),
        |t, d| t.description(d),
    );
    for (i, (col, f)) in meta.columns.iter().zip(def.exposed_fields()).enumerate() {
        let field = Field::new(col.field, type_ref(f, f.required), move |ctx| {
            ready(parent::<Row>(&ctx).map(|row| {
                let v = row.values.get(i).unwrap_or(&Value::Null);
                match v {
                    Value::Null => None,
                    v => Some(FieldValue::value(graphql_value(col, v))),
                }
            }))
        });
        o = o.field(described(field, f.description.as_deref(), |t, d| {
            t.description(d)
        }));
    }
    for link in m.links(meta) {
        let target = link.target;
        let fk = link.fk;
        let f = match link.kind {
            LinkKind::Parent => {
                let i = meta
                    .columns
                    .iter()
                    .position(|c| std::ptr::eq(c, fk))
                    .unwrap_or(0);
                Field::new(link.name, TypeRef::named(target.name), move |ctx| {
                    FieldFuture::new(async move {
                        let id = match parent::<Row>(&ctx)?.values.get(i) {
                            Some(Value::Uuid(id)) => Some(*id),
                            _ => None,
                        };
                        Ok(crud::belongs_to(&ctx, target, id).await?.map(row_value))
                    })
                })
                .description(format!(
                    "The {} this row belongs to (`{}`).",
                    target.name, link.fk_field
                ))
            }
            LinkKind::Child => Field::new(link.name, TypeRef::named(target.name), move |ctx| {
                FieldFuture::new(async move {
                    let id = parent::<Row>(&ctx)?.id();
                    Ok(crud::has_one(&ctx, target, fk, id).await?.map(row_value))
                })
            })
            .description(format!(
                "The {} whose `{}` is this row.",
                target.name, link.fk_field
            )),
            LinkKind::Children => with_list_arguments(
                Field::new(
                    link.name,
                    TypeRef::named_nn(format!("{}Connection", target.name)),
                    move |ctx| {
                        FieldFuture::new(async move {
                            let id = parent::<Row>(&ctx)?.id();
                            let args = list_args(target, &ctx)?;
                            let page = crud::has_many(&ctx, target, fk, id, args).await?;
                            Ok(Some(FieldValue::owned_any(page)))
                        })
                    },
                ),
                target,
            )
            .description(format!(
                "The {} rows whose `{}` is this row, as a connection like the `{}` list.",
                target.name, link.fk_field, target.plural
            )),
        };
        o = o.field(f);
        if link.kind == LinkKind::Children {
            o = o.field(super::aggregate::relation_field(link));
        }
    }
    for f in extra {
        o = o.field(f);
    }
    o
}

fn connection(meta: &'static EntityMeta) -> [Object; 2] {
    let n = meta.name;
    let [conn, edge] = super::connection::<Page>(&format!("{n}Connection"), &format!("{n}Edge"), n);
    let conn = conn.field(
        Field::new("totalCount", TypeRef::named_nn(TypeRef::INT), |ctx| {
            FieldFuture::new(async move {
                let page = parent::<Page>(&ctx)?;
                let n = crud::count(&ctx, page).await?;
                Ok(Some(FieldValue::value(n)))
            })
        })
        .description("The number of rows matching the filter, across all pages."),
    );
    [conn, edge]
}

fn change(meta: &'static EntityMeta) -> Object {
    let n = meta.name;
    Object::new(format!("{n}Change"))
        .field(Field::new("op", TypeRef::named_nn("ChangeOp"), |ctx| {
            ready(parent::<live::Change>(&ctx).map(|c| {
                Some(FieldValue::value(G::Enum(async_graphql::Name::new(
                    c.op.as_str(),
                ))))
            }))
        }))
        .field(
            Field::new("node", TypeRef::named_nn(n), |ctx| {
                // The row itself, not its Arc: entity fields downcast to `Row`.
                ready(
                    parent::<live::Change>(&ctx)
                        .map(|c| Some(FieldValue::borrowed_any(c.node.as_ref()))),
                )
            })
            .description("The row after the change; for DELETED, the row as it was."),
        )
        .field(
            Field::new("previous", TypeRef::named(n), |ctx| {
                ready(parent::<live::Change>(&ctx).map(|c| {
                    c.previous
                        .as_deref()
                        .map(|p: &Row| FieldValue::borrowed_any(p))
                }))
            })
            .description("The row before an update, when the subscriber could read it then."),
        )
        .field(
            Field::new("cursor", TypeRef::named_nn(TypeRef::STRING), |ctx| {
                ready(
                    parent::<live::Change>(&ctx)
                        .map(|c| Some(FieldValue::value(c.cursor.to_string()))),
                )
            })
            .description("Pass as `after` to resume right after this change."),
        )
}

fn inputs(r: &mut Registry, m: &'static Metadata, meta: &'static EntityMeta, def: &cat::Entity) {
    let n = meta.name;
    let exposed: Vec<(&ColumnMeta, &cat::Field)> =
        meta.columns.iter().zip(def.exposed_fields()).collect();
    if def.can_create() {
        let mut o = InputObject::new(format!("{n}CreateInput")).description(format!(
            "The fields of a new {n}, and the related rows to create or connect with it."
        ));
        for v in create_fields(m, meta, def, None) {
            o = o.field(v);
        }
        r.add(o);
    }
    super::nested::register(r, m, meta);
    if def.can_update() {
        let mut o = InputObject::new(format!("{n}UpdateInput")).description(format!(
            "Changes to a {n}: omitted fields stay as they are; null clears a nullable field."
        ));
        for (_, f) in exposed.iter().filter(|(c, _)| c.writable) {
            let v = InputValue::new(&f.name, type_ref(f, false));
            let d = if f.set_by.is_empty() {
                None
            } else {
                f.input_description()
            };
            o = o.field(described(v, d.as_deref(), |t, d| t.description(d)));
        }
        r.add(o);
    }
    let wh = format!("{n}Where");
    let mut o = InputObject::new(&wh)
        .description(format!(
            "Conditions on {n} rows; all given conditions must hold."
        ))
        .field(InputValue::new("AND", TypeRef::named_nn_list(&wh)))
        .field(InputValue::new("OR", TypeRef::named_nn_list(&wh)))
        .field(InputValue::new("NOT", TypeRef::named(&wh)));
    for (col, f) in &exposed {
        o = o.field(InputValue::new(
            col.field,
            TypeRef::named(filter_type(col, f)),
        ));
    }
    for link in m.links(meta) {
        let t = match link.kind {
            LinkKind::Parent | LinkKind::Child => format!("{}Where", link.target.name),
            LinkKind::Children => format!("{}ListRelationFilter", link.target.name),
        };
        o = o.field(InputValue::new(link.name, TypeRef::named(t)));
    }
    r.add(o);

    let mut o = InputObject::new(format!("{n}OrderBy")).description(format!(
        "One sort key for {n} lists: set exactly one field. Ties are broken by id."
    ));
    for (col, _) in exposed.iter().filter(|(c, _)| c.orderable) {
        o = o.field(InputValue::new(col.field, TypeRef::named("SortOrder")));
    }
    for link in m.links(meta).iter().filter(|l| l.kind == LinkKind::Parent) {
        o = o.field(InputValue::new(
            link.name,
            TypeRef::named(format!("{}OrderBy", link.target.name)),
        ));
    }
    r.add(o);

    if def
        .relations
        .iter()
        .any(|rel| rel.inverse_type == cat::InverseType::HasMany)
    {
        r.add(
            InputObject::new(format!("{n}ListRelationFilter"))
                .description(format!("Conditions on a list of related {n} rows."))
                .field(
                    InputValue::new("some", TypeRef::named(&wh))
                        .description("At least one related row matches."),
                )
                .field(
                    InputValue::new("every", TypeRef::named(&wh))
                        .description("Every related row matches (true when there are none)."),
                )
                .field(
                    InputValue::new("none", TypeRef::named(&wh))
                        .description("No related row matches."),
                ),
        );
    }
    if upsertable(def) {
        let mut e = Enum::new(format!("{n}UniqueKey"))
            .description(format!("The unique keys of {n}, for upserts."));
        for u in def.unique_indexes() {
            e = e.item(u.fields.join("_").to_shouty_snake_case());
        }
        r.add(e);
    }
}

/// The fields of `meta`'s create inputs: its writable fields (but `except`, the reference a
/// nesting parent fills in), then the related rows it may create or connect.
pub(super) fn create_fields(
    m: &'static Metadata,
    meta: &'static EntityMeta,
    def: &cat::Entity,
    except: Option<&ColumnMeta>,
) -> Vec<InputValue> {
    let mut out = Vec::new();
    for (col, f) in meta.columns.iter().zip(def.exposed_fields()) {
        if !col.writable || except.is_some_and(|e| std::ptr::eq(e, col)) {
            continue;
        }
        let v = InputValue::new(&f.name, type_ref(f, f.required_on_create()));
        out.push(described(v, f.input_description().as_deref(), |t, d| {
            t.description(d)
        }));
    }
    out.extend(super::nested::fields(m, meta));
    out
}

fn upsertable(def: &cat::Entity) -> bool {
    def.unique_indexes().next().is_some() && def.can_create() && def.can_update()
}

fn queries(r: &mut Registry, meta: &'static EntityMeta) {
    let n = meta.name;
    r.query.push(
        Field::new(meta.singular, TypeRef::named(n), move |ctx| {
            FieldFuture::new(async move {
                let id = id_arg(&ctx, "id");
                Ok(crud::get(&ctx, meta, &id).await?.map(row_value))
            })
        })
        .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
        .description(format!(
            "One {n} by id; null when it does not exist or the caller may not read it."
        )),
    );
    r.query.push(
        with_list_arguments(
            Field::new(
                meta.plural,
                TypeRef::named_nn(format!("{n}Connection")),
                move |ctx| {
                    FieldFuture::new(async move {
                        let args = list_args(meta, &ctx)?;
                        let page = crud::list(&ctx, meta, args).await?;
                        Ok(Some(FieldValue::owned_any(page)))
                    })
                },
            ),
            meta,
        )
        .description(format!(
            "A page of {n} rows: filter with `where`, sort with `orderBy` (ties broken by id), page with `first`/`after` or `last`/`before`."
        )),
    );
}

fn subscription(r: &mut Registry, meta: &'static EntityMeta) {
    let n = meta.name;
    r.subscription.push(
        SubscriptionField::new(
            format!("{}Changed", meta.singular),
            TypeRef::named_nn(format!("{n}Change")),
            move |ctx| {
                SubscriptionFieldFuture::new(async move {
                    let filter = arg(&ctx, "where")
                        .map(|w| filter::where_filter(meta, w, "where"))
                        .transpose()?;
                    let ops = live::ops_arg(arg(&ctx, "ops"));
                    let after = string_arg(&ctx, "after");
                    let changes = live::changes(&ctx, meta, filter, ops, after).await?;
                    Ok(changes.map(|c| c.map(FieldValue::owned_any)))
                })
            },
        )
        .argument(InputValue::new("where", TypeRef::named(format!("{n}Where"))))
        .argument(InputValue::new("ops", TypeRef::named_nn_list("ChangeOp")))
        .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
        .description(format!(
            "Changes of {n} rows the caller may read, in commit order: `where` matches the row before or after the change, `ops` limits the kinds, `after` (a change's cursor) first replays every change since."
        )),
    );
}

/// The write scope of the caller of `ctx`.
fn scope(ctx: &ResolverContext<'_>) -> Result<WriteScope, ApiError> {
    Ok(WriteScope::new(crud::caller(ctx)?))
}

fn required<'b>(ctx: &'b ResolverContext<'_>, name: &str) -> Result<&'b G, ApiError> {
    arg(ctx, name).ok_or_else(|| ApiError::bad_input(name, format!("{name} is required")))
}

fn mutations(r: &mut Registry, meta: &'static EntityMeta, def: &cat::Entity) {
    let n = meta.name;
    let many = def.plural.to_upper_camel_case();
    if def.can_create() {
        r.mutation.push(
            Field::new(format!("create{n}"), TypeRef::named_nn(n), move |ctx| {
                FieldFuture::new(async move {
                    let w = scope(&ctx)?;
                    let mut budget = nested::Budget::new();
                    let row = nested::read(
                        meta,
                        required(&ctx, "input")?,
                        &w,
                        "input",
                        None,
                        &mut budget,
                        0,
                    )?;
                    let mut rows = crud::create_nested(&ctx, meta, vec![row]).await?;
                    let row = rows
                        .pop()
                        .ok_or_else(|| ApiError::internal("insert returned no row"))?;
                    Ok(Some(row_value(row)))
                })
            })
            .argument(InputValue::new(
                "input",
                TypeRef::named_nn(format!("{n}CreateInput")),
            ))
            .description(format!("Creates one {n}.")),
        );
        r.mutation.push(
            Field::new(
                format!("create{many}"),
                TypeRef::named_nn_list_nn(n),
                move |ctx| {
                    FieldFuture::new(async move {
                        let inputs: &[G] = match required(&ctx, "inputs")? {
                            G::List(l) => l,
                            one => std::slice::from_ref(one),
                        };
                        if inputs.len() > MAX_CREATE_ROWS {
                            return err(ApiError::bad_input(
                                "inputs",
                                format!("inputs may hold at most {MAX_CREATE_ROWS} rows"),
                            ));
                        }
                        let w = scope(&ctx)?;
                        let mut budget = nested::Budget::new();
                        let rows = inputs
                            .iter()
                            .enumerate()
                            .map(|(i, v)| {
                                nested::read(
                                    meta,
                                    v,
                                    &w,
                                    &format!("inputs[{i}]"),
                                    None,
                                    &mut budget,
                                    0,
                                )
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok(Some(rows_value(
                            crud::create_nested(&ctx, meta, rows).await?,
                        )))
                    })
                },
            )
            .argument(InputValue::new(
                "inputs",
                TypeRef::named_nn_list_nn(format!("{n}CreateInput")),
            ))
            .description(format!("Creates several {n} rows, all or none.")),
        );
    }
    if def.can_update() {
        let mut one = Field::new(format!("update{n}"), TypeRef::named_nn(n), move |ctx| {
            FieldFuture::new(async move {
                let id = id_arg(&ctx, "id");
                let form = update_form(meta, required(&ctx, "input")?, &scope(&ctx)?, "input")?;
                let expected = int_arg(&ctx, "expectedVersion");
                let row = crud::update_one(&ctx, meta, &id, form, expected).await?;
                Ok(Some(row_value(row)))
            })
        })
        .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
        .argument(InputValue::new(
            "input",
            TypeRef::named_nn(format!("{n}UpdateInput")),
        ));
        if meta.version.is_some() {
            one = one.argument(InputValue::new(
                "expectedVersion",
                TypeRef::named(TypeRef::INT),
            ));
        }
        r.mutation.push(one.description(format!(
            "Updates one {n}; fields left out stay as they are."
        )));
        r.mutation.push(
            Field::new(
                format!("update{many}"),
                TypeRef::named_nn_list_nn(n),
                move |ctx| {
                    FieldFuture::new(async move {
                        let w = filter::where_filter(meta, required(&ctx, "where")?, "where")?;
                        let form =
                            update_form(meta, required(&ctx, "input")?, &scope(&ctx)?, "input")?;
                        Ok(Some(rows_value(crud::update_many(&ctx, meta, w, form).await?)))
                    })
                },
            )
            .argument(InputValue::new("where", TypeRef::named_nn(format!("{n}Where"))))
            .argument(InputValue::new(
                "input",
                TypeRef::named_nn(format!("{n}UpdateInput")),
            ))
            .description(format!(
                "Applies the same changes to every {n} matching `where` (`{{}}` matches all); returns the updated rows."
            )),
        );
    }
    if def.can_delete() {
        r.mutation.push(
            Field::new(format!("delete{n}"), TypeRef::named_nn(n), move |ctx| {
                FieldFuture::new(async move {
                    let id = id_arg(&ctx, "id");
                    Ok(Some(row_value(crud::delete_one(&ctx, meta, &id).await?)))
                })
            })
            .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
            .description(format!("Deletes one {n} and returns it as it was.")),
        );
        r.mutation.push(
            Field::new(
                format!("delete{many}"),
                TypeRef::named_nn_list_nn(n),
                move |ctx| {
                    FieldFuture::new(async move {
                        let w = filter::where_filter(meta, required(&ctx, "where")?, "where")?;
                        Ok(Some(rows_value(crud::delete_many(&ctx, meta, w).await?)))
                    })
                },
            )
            .argument(InputValue::new(
                "where",
                TypeRef::named_nn(format!("{n}Where")),
            ))
            .description(format!(
                "Deletes every {n} matching `where` (`{{}}` matches all); returns the deleted rows."
            )),
        );
    }
    if upsertable(def) {
        let keys: Vec<String> = def
            .unique_indexes()
            .map(|u| u.fields.join("_").to_shouty_snake_case())
            .collect();
        r.mutation.push(
            Field::new(format!("upsert{n}"), TypeRef::named_nn(n), move |ctx| {
                let keys = keys.clone();
                FieldFuture::new(async move {
                    let key = match arg(&ctx, "onConflict") {
                        Some(G::Enum(k)) => keys.iter().position(|x| x == k.as_str()),
                        Some(G::String(k)) => keys.iter().position(|x| x == k),
                        _ => None,
                    }
                    .ok_or_else(|| ApiError::bad_input("onConflict", "onConflict is not a unique key"))?;
                    let w = scope(&ctx)?;
                    let given = required(&ctx, "create")?;
                    if let Some(rel) = nested::asks(meta, given) {
                        return err(ApiError::bad_input(
                            format!("create.{rel}"),
                            format!("create.{rel}: upserts write one row; create related rows apart"),
                        ));
                    }
                    let create = insert_form(meta, given, &w, "create")?;
                    let update = arg(&ctx, "update")
                        .map(|u| update_form(meta, u, &w, "update"))
                        .transpose()?;
                    Ok(Some(row_value(
                        crud::upsert(&ctx, meta, key, create, update).await?,
                    )))
                })
            })
            .argument(InputValue::new(
                "onConflict",
                TypeRef::named_nn(format!("{n}UniqueKey")),
            ))
            .argument(InputValue::new(
                "create",
                TypeRef::named_nn(format!("{n}CreateInput")),
            ))
            .argument(InputValue::new(
                "update",
                TypeRef::named(format!("{n}UpdateInput")),
            ))
            .description(format!(
                "Creates a {n}, or updates the one with the same `onConflict` key with `update` (without `update`, returns the existing row unchanged)."
            )),
        );
    }
}

/// Registers the types and root fields of `meta`.
pub fn register(
    r: &mut Registry,
    m: &'static Metadata,
    meta: &'static EntityMeta,
    extra: Vec<Field>,
) {
    let Some(def) = m.definition(meta.name) else {
        return;
    };
    r.add(object(m, meta, def, extra));
    let [conn, edge] = connection(meta);
    r.add(conn);
    r.add(edge);
    r.add(change(meta));
    inputs(r, m, meta, def);
    queries(r, meta);
    super::aggregate::register(r, m, meta);
    subscription(r, meta);
    mutations(r, meta, def);
}
