//! The types every entity shares: scalars, `PageInfo`, the sort and change enums, the filter
//! input of each scalar type, and the catalog's enums with their filters.

use async_graphql::dynamic::{
    Enum, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, Scalar, TypeRef,
};
use async_graphql::Value as G;
use gateway_catalog::model::Catalog;

use crate::graphql::meta::{ColumnType, Metadata};
use crate::graphql::page::PageInfo;
use crate::graphql::schema::{described, parent, Registry};

fn scalars(r: &mut Registry) {
    let bigint = |v: &G| match v {
        G::String(s) => s.parse::<i64>().is_ok(),
        G::Number(n) => n.is_i64(),
        _ => false,
    };
    r.add(Scalar::new("BigInt").validator(bigint));
    let decimal = |v: &G| match v {
        G::String(s) => s.parse::<bigdecimal::BigDecimal>().is_ok(),
        G::Number(_) => true,
        _ => false,
    };
    r.add(Scalar::new("Decimal").validator(decimal));
    let datetime = |v: &G| match v {
        G::String(s) => s.parse::<chrono::DateTime<chrono::Utc>>().is_ok(),
        _ => false,
    };
    r.add(
        Scalar::new("DateTime")
            .description(
                "Implement the DateTime<Utc> scalar\n\nThe input/output is a string in RFC3339 format.",
            )
            .validator(datetime),
    );
    r.add(Scalar::new("JSON").description("A scalar that can represent any JSON value."));
}

fn enums(r: &mut Registry, c: &Catalog) {
    r.add(Enum::new("SortOrder").item("ASC").item("DESC"));
    r.add(
        Enum::new("ChangeOp")
            .item("CREATED")
            .item("UPDATED")
            .item("DELETED"),
    );
    r.add(
        Enum::new("QueryMode")
            .description("How text comparisons treat letter case.")
            .item("DEFAULT")
            .item("INSENSITIVE"),
    );
    for e in &c.enums {
        let mut en = described(Enum::new(&e.name), e.description.as_deref(), |t, d| {
            t.description(d)
        });
        for v in &e.values {
            en = en.item(v.as_str());
        }
        r.add(en);
        r.add(comparable(
            &format!("{}Filter", e.name),
            &format!("Filter on a {} field.", e.name),
            &e.name,
            false,
        ));
    }
}

fn page_info(r: &mut Registry) {
    let flag = |name: &str, get: fn(&PageInfo) -> bool| {
        Field::new(name, TypeRef::named_nn(TypeRef::BOOLEAN), move |ctx| {
            FieldFuture::new(async move {
                let p = parent::<PageInfo>(&ctx)?;
                Ok(Some(FieldValue::value(get(p))))
            })
        })
    };
    let cursor = |name: &str, get: fn(&PageInfo) -> &Option<String>| {
        Field::new(name, TypeRef::named(TypeRef::STRING), move |ctx| {
            FieldFuture::new(async move {
                let p = parent::<PageInfo>(&ctx)?;
                Ok(get(p).clone().map(FieldValue::value))
            })
        })
    };
    r.add(
        Object::new("PageInfo")
            .field(flag("hasNextPage", |p| p.has_next_page))
            .field(flag("hasPreviousPage", |p| p.has_previous_page))
            .field(cursor("startCursor", |p| &p.start_cursor))
            .field(cursor("endCursor", |p| &p.end_cursor)),
    );
}

/// `equals`, `not`, `in`, `notIn`, (`lt` ... `gte` when `ordered`), `isNull`.
fn comparable(name: &str, description: &str, ty: &str, ordered: bool) -> InputObject {
    let mut o = InputObject::new(name)
        .description(description)
        .field(InputValue::new("equals", TypeRef::named(ty)))
        .field(InputValue::new("not", TypeRef::named(ty)))
        .field(InputValue::new("in", TypeRef::named_nn_list(ty)))
        .field(InputValue::new("notIn", TypeRef::named_nn_list(ty)));
    if ordered {
        for op in ["lt", "lte", "gt", "gte"] {
            o = o.field(InputValue::new(op, TypeRef::named(ty)));
        }
    }
    o.field(InputValue::new("isNull", TypeRef::named(TypeRef::BOOLEAN)))
}

fn list_filter(name: &str, description: &str, ty: &str) -> InputObject {
    InputObject::new(name)
        .description(description)
        .field(
            InputValue::new("has", TypeRef::named(ty))
                .description("The list contains this element."),
        )
        .field(
            InputValue::new("hasEvery", TypeRef::named_nn_list(ty))
                .description("The list contains every one of these elements."),
        )
        .field(
            InputValue::new("hasSome", TypeRef::named_nn_list(ty))
                .description("The list contains at least one of these elements."),
        )
        .field(InputValue::new("isEmpty", TypeRef::named(TypeRef::BOOLEAN)))
        .field(InputValue::new("equals", TypeRef::named_nn_list(ty)))
        .field(InputValue::new("isNull", TypeRef::named(TypeRef::BOOLEAN)))
}

fn filters(r: &mut Registry, m: &Metadata) {
    for (name, doc, ty) in [
        ("IntFilter", "Conditions on an Int field.", TypeRef::INT),
        (
            "FloatFilter",
            "Conditions on a Float field.",
            TypeRef::FLOAT,
        ),
        (
            "DateTimeFilter",
            "Conditions on a DateTime field (RFC 3339).",
            "DateTime",
        ),
        ("BigIntFilter", "Conditions on a BigInt field.", "BigInt"),
        ("DecimalFilter", "Conditions on a Decimal field.", "Decimal"),
    ] {
        r.add(comparable(name, doc, ty, true));
    }
    r.add(comparable(
        "IDFilter",
        "Conditions on an ID field.",
        TypeRef::ID,
        false,
    ));
    let mut string = InputObject::new("StringFilter").description(
        "Conditions on a String field. `mode: INSENSITIVE` ignores letter case for every operator.",
    );
    for op in ["equals", "not"] {
        string = string.field(InputValue::new(op, TypeRef::named(TypeRef::STRING)));
    }
    for op in ["in", "notIn"] {
        string = string.field(InputValue::new(op, TypeRef::named_nn_list(TypeRef::STRING)));
    }
    for op in [
        "lt",
        "lte",
        "gt",
        "gte",
        "contains",
        "startsWith",
        "endsWith",
    ] {
        string = string.field(InputValue::new(op, TypeRef::named(TypeRef::STRING)));
    }
    string = string
        .field(InputValue::new("mode", TypeRef::named("QueryMode")))
        .field(InputValue::new("isNull", TypeRef::named(TypeRef::BOOLEAN)));
    r.add(string);
    r.add(
        InputObject::new("BooleanFilter")
            .description("Conditions on a Boolean field.")
            .field(InputValue::new("equals", TypeRef::named(TypeRef::BOOLEAN)))
            .field(InputValue::new("not", TypeRef::named(TypeRef::BOOLEAN)))
            .field(InputValue::new("isNull", TypeRef::named(TypeRef::BOOLEAN))),
    );
    r.add(
        InputObject::new("JSONFilter")
            .description(
                "Conditions on a JSON field. With `path` (a list of keys or array indexes), `equals`, `not`,\n`contains` and `containedBy` apply to the value at that path instead of the whole document.",
            )
            .field(InputValue::new("path", TypeRef::named_nn_list(TypeRef::STRING)))
            .field(InputValue::new("equals", TypeRef::named("JSON")))
            .field(InputValue::new("not", TypeRef::named("JSON")))
            .field(
                InputValue::new("contains", TypeRef::named("JSON"))
                    .description("The value contains this JSON (`@>`)."),
            )
            .field(
                InputValue::new("containedBy", TypeRef::named("JSON"))
                    .description("The value is contained in this JSON (`<@`)."),
            )
            .field(
                InputValue::new("hasKey", TypeRef::named(TypeRef::STRING))
                    .description("An object with this top-level key, or an array with this string element."),
            )
            .field(InputValue::new("hasAnyKeys", TypeRef::named_nn_list(TypeRef::STRING)))
            .field(InputValue::new("hasAllKeys", TypeRef::named_nn_list(TypeRef::STRING)))
            .field(InputValue::new("isNull", TypeRef::named(TypeRef::BOOLEAN))),
    );
    // The list filters some list column uses (a schema lists no type nothing refers to).
    let lists = |ty: fn(ColumnType) -> bool| {
        m.entities
            .iter()
            .any(|e| e.columns.iter().any(|c| c.list && ty(c.ty)))
    };
    let uuid = |t| t == ColumnType::Uuid;
    let int = |t| t == ColumnType::Int;
    let other = |t| t != ColumnType::Uuid && t != ColumnType::Int;
    if lists(other) {
        r.add(list_filter(
            "StringListFilter",
            "Conditions on a list of strings.",
            TypeRef::STRING,
        ));
    }
    if lists(int) {
        r.add(list_filter(
            "IntListFilter",
            "Conditions on a list of integers.",
            TypeRef::INT,
        ));
    }
    if lists(uuid) {
        r.add(list_filter(
            "IDListFilter",
            "Conditions on a list of IDs.",
            TypeRef::ID,
        ));
    }
}

/// Registers every shared type.
pub fn register(r: &mut Registry, m: &Metadata) {
    scalars(r);
    enums(r, &m.catalog);
    page_info(r);
    filters(r, m);
}
