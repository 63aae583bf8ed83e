//! The schema registry for the platform operator (`gateway token --platform`), the same
//! actions as `gateway schema`: `schemaRegistryStatus`, `schemaPackagePreview`,
//! `scanSchemaPackages`, `approveSchemaChanges`, `rejectSchemaChanges`. A tenant's admin
//! gets FORBIDDEN. Each action runs in one transaction with its audit rows; applying is
//! left to the next start, as the seed asks.

use std::path::PathBuf;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, TypeRef};
use async_graphql::Value as G;
use futures::FutureExt;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Change};
use crate::auth::RequestContext;
use crate::db::sql::Filter;
use crate::db::value::Value;
use crate::error::ApiError;
use crate::graphql::crud::{caller, database, read, select_rows};
use crate::graphql::input;
use crate::graphql::meta::metadata;
use crate::graphql::row::Row;
use crate::graphql::schema::{arg, parent, ready, string_arg, Extensions};
use crate::registry::queue::{self, Selection};
use crate::registry::report::{self, PreviewChange};
use crate::registry::{Actor, RegistryError};

/// Where the packages are, as schema data (`GATEWAY_PACKAGES_DIR`).
#[derive(Debug, Clone)]
pub struct PackagesDir(pub Option<PathBuf>);

fn packages_dir(ctx: &async_graphql::Context<'_>) -> Result<PathBuf, ApiError> {
    ctx.data_opt::<PackagesDir>()
        .and_then(|p| p.0.clone())
        .ok_or_else(|| {
            ApiError::bad_request("no packages folder is configured (GATEWAY_PACKAGES_DIR)")
        })
}

/// The caller, if it is the platform operator.
fn operator<'c>(ctx: &'c async_graphql::Context<'_>) -> Result<&'c RequestContext, ApiError> {
    let rc = caller(ctx)?;
    if !rc.platform {
        return Err(ApiError::forbidden(
            "only the platform operator may review schema changes",
        ));
    }
    Ok(rc)
}

fn actor(rc: &RequestContext) -> Actor {
    Actor {
        user_id: Some(rc.user_id),
        name: format!("platform operator {} (tenant {})", rc.user_id, rc.tenant_id),
    }
}

/// The SchemaChange rows `ids`, as the entity type.
async fn changes(
    ctx: &async_graphql::Context<'_>,
    ids: Vec<Uuid>,
) -> Result<FieldValue<'static>, ApiError> {
    let meta = metadata()
        .entity("SchemaChange")
        .ok_or_else(|| ApiError::internal("the catalog has no SchemaChange"))?;
    if ids.is_empty() {
        return Ok(FieldValue::list(Vec::<FieldValue>::new()));
    }
    let filter = Filter::In {
        col: meta.id_column(),
        values: Value::UuidList(ids),
        negated: false,
    };
    let b = select_rows(meta, None, &filter, &[], None, false);
    let mut rows: Vec<Row> = read(ctx, meta.name, b).await?;
    rows.sort_by_key(|r| r.id());
    Ok(FieldValue::list(
        rows.into_iter().map(FieldValue::owned_any),
    ))
}

/// The `ids` / `all` arguments.
fn selection(ctx: &async_graphql::dynamic::ResolverContext<'_>) -> Result<Selection, ApiError> {
    if matches!(arg(ctx, "all"), Some(G::Boolean(true))) {
        return Ok(Selection::All);
    }
    let ids = match arg(ctx, "ids") {
        Some(G::List(items)) => items
            .iter()
            .map(|v| {
                let id = input::id_of(v).unwrap_or_default();
                input::id(&id, "", "ids")
            })
            .collect::<Result<Vec<Uuid>, _>>()?,
        _ => Vec::new(),
    };
    if ids.is_empty() {
        return Err(ApiError::bad_input("ids", "give ids, or all: true"));
    }
    if ids.len() > 1000 {
        return Err(ApiError::limit_exceeded("at most 1000 ids per call"));
    }
    Ok(Selection::Ids(ids))
}

/// Audit rows of a registry action: each change's status before and after.
fn audited(ids: &[Uuid], status: &str) -> Vec<Change> {
    ids.iter()
        .map(|id| Change {
            id: *id,
            old: None,
            new: Some(json!({ "status": status })),
        })
        .collect()
}

struct Scan {
    report: queue::ScanReport,
}

struct Approval {
    approved: Vec<Uuid>,
    refused: Vec<String>,
}

struct Status(report::Status);

struct Preview {
    package: String,
    sql: String,
    sdl: String,
    changes: Vec<PreviewChange>,
    notes: Vec<String>,
}

fn strings<T: 'static>(name: &str, get: fn(&T) -> Vec<String>) -> Field {
    Field::new(
        name,
        TypeRef::named_nn_list_nn(TypeRef::STRING),
        move |ctx| {
            ready(
                parent::<T>(&ctx)
                    .map(|t| Some(FieldValue::list(get(t).into_iter().map(FieldValue::value)))),
            )
        },
    )
}

fn text<T: 'static>(name: &str, get: fn(&T) -> String) -> Field {
    Field::new(name, TypeRef::named_nn(TypeRef::STRING), move |ctx| {
        ready(parent::<T>(&ctx).map(|t| Some(FieldValue::value(get(t)))))
    })
}

fn count<T: 'static>(name: &str, get: fn(&T) -> usize) -> Field {
    Field::new(name, TypeRef::named_nn(TypeRef::INT), move |ctx| {
        ready(
            parent::<T>(&ctx)
                .map(|t| Some(FieldValue::value(i32::try_from(get(t)).unwrap_or(i32::MAX)))),
        )
    })
}

fn ids_of(list: &[Uuid]) -> Vec<String> {
    list.iter().map(Uuid::to_string).collect()
}

fn types() -> Vec<Object> {
    vec![
        Object::new("SchemaScan")
            .description("What a scan of the packages found and queued.")
            .field(Field::new(
                "queued",
                TypeRef::named_nn_list_nn("SchemaChange"),
                |ctx| {
                    FieldFuture::new(async move {
                        let ids = parent::<Scan>(&ctx)?.report.queued.clone();
                        Ok(Some(changes(&ctx, ids).await?))
                    })
                },
            ))
            .field(strings::<Scan>("alreadyQueued", |s| {
                ids_of(&s.report.already_queued)
            }))
            .field(strings::<Scan>("superseded", |s| {
                ids_of(&s.report.superseded)
            }))
            .field(strings::<Scan>("unchanged", |s| s.report.unchanged.clone()))
            .field(strings::<Scan>("refused", |s| {
                s.report
                    .refused
                    .iter()
                    .map(|(e, why)| format!("{e}: {}", why.join("; ")))
                    .collect()
            }))
            .field(strings::<Scan>("notes", |s| s.report.notes.clone())),
        Object::new("SchemaApproval")
            .description("Changes approved for the next start, and destructive ones left pending.")
            .field(Field::new(
                "approved",
                TypeRef::named_nn_list_nn("SchemaChange"),
                |ctx| {
                    FieldFuture::new(async move {
                        let ids = parent::<Approval>(&ctx)?.approved.clone();
                        Ok(Some(changes(&ctx, ids).await?))
                    })
                },
            ))
            .field(strings::<Approval>("refused", |a| a.refused.clone())),
        Object::new("SchemaRegistryStatus")
            .description("The registry: applied package entities, the queue, failures and drift.")
            .field(strings::<Status>("applied", |s| {
                s.0.applied
                    .iter()
                    .map(|a| {
                        format!(
                            "{} ({}, table {}, checksum {})",
                            a.entity,
                            a.package,
                            a.table,
                            a.checksum.as_deref().unwrap_or("none")
                        )
                    })
                    .collect()
            }))
            .field(count::<Status>("pending", |s| s.0.pending))
            .field(count::<Status>("approved", |s| s.0.approved))
            .field(strings::<Status>("failed", |s| {
                s.0.failed
                    .iter()
                    .map(|(id, e, why)| format!("{e} ({id}): {why}"))
                    .collect()
            }))
            .field(strings::<Status>("drift", |s| s.0.drift.clone()))
            .field(strings::<Status>("unscanned", |s| s.0.unscanned.clone()))
            .field(strings::<Status>("problems", |s| s.0.problems.clone())),
        Object::new("SchemaPreviewChange")
            .field(text::<PreviewChange>("entity", |c| c.entity.clone()))
            .field(text::<PreviewChange>("kind", |c| c.kind.to_string()))
            .field(text::<PreviewChange>("sql", |c| c.sql.clone()))
            .field(strings::<PreviewChange>("destructive", |c| {
                c.destructive.clone()
            }))
            .field(strings::<PreviewChange>("refused", |c| c.refused.clone())),
        Object::new("SchemaPreview")
            .description(
                "What approving a package's changes would run, and the GraphQL it would serve.",
            )
            .field(text::<Preview>("packageId", |p| p.package.clone()))
            .field(text::<Preview>("sql", |p| p.sql.clone()))
            .field(text::<Preview>("sdl", |p| p.sdl.clone()))
            .field(Field::new(
                "changes",
                TypeRef::named_nn_list_nn("SchemaPreviewChange"),
                |ctx| {
                    ready(parent::<Preview>(&ctx).map(|p| {
                        Some(FieldValue::list(p.changes.iter().map(|c| {
                            FieldValue::owned_any(PreviewChange {
                                entity: c.entity.clone(),
                                kind: c.kind,
                                sql: c.sql.clone(),
                                destructive: c.destructive.clone(),
                                refused: c.refused.clone(),
                            })
                        })))
                    }))
                },
            ))
            .field(strings::<Preview>("notes", |p| p.notes.clone())),
    ]
}

/// Runs `f` in a transaction as the operator, with the registry's errors as API errors.
async fn in_transaction<T, F>(ctx: &async_graphql::Context<'_>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: for<'r> FnOnce(
            &'r mut crate::db::Conn,
        ) -> futures::future::BoxFuture<'r, Result<T, RegistryError>>
        + Send
        + 'static,
{
    let rc = operator(ctx)?;
    database(ctx)?
        .transaction(rc, false, move |conn| {
            async move { f(conn).await.map_err(ApiError::from) }.boxed()
        })
        .await
}

/// Runs a registry action as the operator, with an audit row per change it touched.
async fn act<T, F>(
    ctx: &async_graphql::Context<'_>,
    action: audit::Action,
    status: &'static str,
    f: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: for<'r> FnOnce(
            &'r mut crate::db::Conn,
            Actor,
        )
            -> futures::future::BoxFuture<'r, Result<(T, Vec<Uuid>), RegistryError>>
        + Send
        + 'static,
{
    let rc = operator(ctx)?.clone();
    in_transaction(ctx, move |conn| {
        async move {
            let (value, touched) = f(conn, actor(&rc)).await?;
            audit::record(conn, &rc, action, "SchemaChange", audited(&touched, status))
                .await
                .map_err(|e| RegistryError::Internal(e.message()))?;
            Ok(value)
        }
        .boxed()
    })
    .await
}

fn queries() -> Vec<Field> {
    vec![
        Field::new(
            "schemaRegistryStatus",
            TypeRef::named_nn("SchemaRegistryStatus"),
            |ctx| {
                FieldFuture::new(async move {
                    let dir = ctx.data_opt::<PackagesDir>().and_then(|p| p.0.clone());
                    let status = in_transaction(&ctx, move |conn| {
                        async move { report::status(conn, dir.as_deref()).await }.boxed()
                    })
                    .await?;
                    Ok(Some(FieldValue::owned_any(Status(status))))
                })
            },
        )
        .description("The schema registry's state (platform operator only)."),
        Field::new(
            "schemaPackagePreview",
            TypeRef::named_nn("SchemaPreview"),
            |ctx| {
                FieldFuture::new(async move {
                    let dir = packages_dir(&ctx)?;
                    let package = string_arg(&ctx, "packageId").unwrap_or_default();
                    let name = package.clone();
                    let preview = in_transaction(&ctx, move |conn| {
                        async move { report::preview(conn, &dir, &name).await }.boxed()
                    })
                    .await?;
                    let sdl = crate::graphql::preview_sdl(&preview.declared)
                        .map(|sdl| report::package_sdl(&sdl, &preview.declared, &package))
                        .map_err(ApiError::bad_request)?;
                    Ok(Some(FieldValue::owned_any(Preview {
                        package,
                        sql: preview
                            .changes
                            .iter()
                            .map(|c| c.sql.clone())
                            .collect::<Vec<_>>()
                            .join("\n"),
                        sdl,
                        changes: preview.changes,
                        notes: preview.notes,
                    })))
                })
            },
        )
        .argument(InputValue::new(
            "packageId",
            TypeRef::named_nn(TypeRef::STRING),
        ))
        .description(
            "The SQL a package's changes would run and the GraphQL types it would add, against\nwhat is applied (platform operator only).",
        ),
    ]
}

fn mutations() -> Vec<Field> {
    vec![
        Field::new("scanSchemaPackages", TypeRef::named_nn("SchemaScan"), |ctx| {
            FieldFuture::new(async move {
                let dir = packages_dir(&ctx)?;
                let report = act(&ctx, audit::Action::Create, "PENDING", move |conn, by| {
                    async move {
                        let report = queue::scan(conn, &dir, &by).await?;
                        let queued = report.queued.clone();
                        Ok((report, queued))
                    }
                    .boxed()
                })
                .await?;
                Ok(Some(FieldValue::owned_any(Scan { report })))
            })
        })
        .description(
            "Reads every package, validates it against the others, and queues what differs from\nthe applied catalog as pending changes (platform operator only).",
        ),
        Field::new(
            "approveSchemaChanges",
            TypeRef::named_nn("SchemaApproval"),
            |ctx| {
                FieldFuture::new(async move {
                    let which = selection(&ctx)?;
                    let allow = matches!(arg(&ctx, "allowDestructive"), Some(G::Boolean(true)));
                    let approval = act(&ctx, audit::Action::Update, "APPROVED", move |conn, by| {
                        async move {
                            let a = queue::approve(conn, &which, &by, allow).await?;
                            let approved = a.approved.clone();
                            Ok((a, approved))
                        }
                        .boxed()
                    })
                    .await?;
                    Ok(Some(FieldValue::owned_any(Approval {
                        approved: approval.approved,
                        refused: approval.refused.into_iter().map(|(_, why)| why).collect(),
                    })))
                })
            },
        )
        .argument(InputValue::new("ids", TypeRef::named_nn_list(TypeRef::ID)))
        .argument(InputValue::new("all", TypeRef::named(TypeRef::BOOLEAN)))
        .argument(
            InputValue::new("allowDestructive", TypeRef::named(TypeRef::BOOLEAN)).description(
                "Accept changes that drop, rename, retype or tighten what is stored.",
            ),
        )
        .description(
            "Approves pending changes; they are applied at the next start (platform operator only).",
        ),
        Field::new(
            "rejectSchemaChanges",
            TypeRef::named_nn_list_nn("SchemaChange"),
            |ctx| {
                FieldFuture::new(async move {
                    let which = selection(&ctx)?;
                    let ids = act(&ctx, audit::Action::Update, "REJECTED", move |conn, by| {
                        async move {
                            let ids = queue::reject(conn, &which, &by).await?;
                            Ok((ids.clone(), ids))
                        }
                        .boxed()
                    })
                    .await?;
                    Ok(Some(changes(&ctx, ids).await?))
                })
            },
        )
        .argument(InputValue::new("ids", TypeRef::named_nn_list(TypeRef::ID)))
        .argument(InputValue::new("all", TypeRef::named(TypeRef::BOOLEAN)))
        .description("Rejects changes not yet applied (platform operator only)."),
    ]
}

/// The registry's fields, as engine extensions.
pub fn extensions() -> Extensions {
    Extensions {
        types: types().into_iter().map(Into::into).collect(),
        query: queries(),
        mutation: mutations(),
        ..Extensions::default()
    }
}
