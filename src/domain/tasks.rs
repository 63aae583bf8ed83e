//! Human tasks (seed 003): `createTask` assigns a task to a user or to a group (whose
//! strategy picks a member: ROUND_ROBIN, LOAD_BALANCED, or none for MANUAL); `claimTask`,
//! `unclaimTask`, `completeTask` (form data validated against the task's JSON Schema),
//! `reassignTask`; `myPendingTasks`. Every transition is one transaction with its audit
//! row, change event, TaskHistory row and the assignee's notification. The SLA sweeper
//! (`sweep_overdue`) escalates overdue tasks once, whatever the number of instances.

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputObject, InputValue, ResolverContext, TypeRef,
};
use async_graphql::Value as G;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::notify::{notify, Kind, Notice};
use crate::audit::Change;
use crate::auth::{RequestContext, Role};
use crate::db::sql::SqlBuilder;
use crate::db::value::Value;
use crate::db::{Conn, Db};
use crate::error::ApiError;
use crate::graphql::crud::{caller, load_rows};
use crate::graphql::input;
use crate::graphql::meta::{metadata, ColumnType, EntityMeta};
use crate::graphql::row::Row;
use crate::graphql::schema::{arg, id_arg, int_arg, Extensions};

/// Statuses a task is still open in.
const OPEN: &[&str] = &["CREATED", "ASSIGNED", "CLAIMED", "ESCALATED"];

/// Largest form schema and form data accepted, in bytes of JSON.
const MAX_FORM_BYTES: usize = 64 * 1024;

fn tasks() -> Result<&'static EntityMeta, ApiError> {
    metadata()
        .entity("Task")
        .ok_or_else(|| ApiError::internal("the catalog has no Task"))
}

fn text(row: &Row, meta: &EntityMeta, column: &str) -> Option<String> {
    match row.value(meta, column) {
        Value::Text(s) => Some(s),
        _ => None,
    }
}

fn uuid(row: &Row, meta: &EntityMeta, column: &str) -> Option<Uuid> {
    match row.value(meta, column) {
        Value::Uuid(u) => Some(u),
        _ => None,
    }
}

/// Binds `v` as a value of `ty`.
fn bound(b: &mut SqlBuilder, v: Value, ty: ColumnType) {
    b.bind(v, ty, false);
}

/// The task `id` of the caller's tenant, locked for the transaction.
async fn lock_task(conn: &mut Conn, rc: &RequestContext, id: Uuid) -> Result<Row, ApiError> {
    super::readable_row(conn, rc, tasks()?, id, true).await
}

/// Who did something to a task.
#[derive(Debug, Clone, Copy)]
enum Actor {
    User(Uuid),
    System,
}

/// Appends a TaskHistory row (append-only; the engine offers no way to write it).
async fn history(
    conn: &mut Conn,
    tenant: Uuid,
    task: Uuid,
    action: &str,
    actor: Actor,
    details: Json,
) -> Result<(), ApiError> {
    let (actor_type, actor_id) = match actor {
        Actor::User(u) => ("user", u),
        Actor::System => ("system", Uuid::nil()),
    };
    let mut b = SqlBuilder::new(
        "INSERT INTO \"task_histories\" (\"id\", \"tenant_id\", \"task_id\", \"action\", \"actor_type\", \"actor_id\", \"details\") VALUES (",
    );
    // Time-ordered ids: entries of one transaction share `createdAt` and keep their order.
    let values = [
        (Value::Uuid(Uuid::now_v7()), ColumnType::Uuid),
        (Value::Uuid(tenant), ColumnType::Uuid),
        (Value::Uuid(task), ColumnType::Uuid),
        (Value::Text(action.to_string()), ColumnType::Text),
        (Value::Text(actor_type.to_string()), ColumnType::Text),
        (Value::Uuid(actor_id), ColumnType::Uuid),
        (Value::Json(details), ColumnType::Json),
    ];
    for (i, (v, ty)) in values.into_iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        bound(&mut b, v, ty);
    }
    b.push(")");
    diesel_async::RunQueryDsl::execute(b.into_query(), conn)
        .await
        .map_err(|e| ApiError::internal(format!("task history: {e}")))?;
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Picked {
    #[diesel(sql_type = diesel::sql_types::Text)]
    strategy: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    user_id: Option<Uuid>,
}

/// The group's strategy and the member it picks (none for MANUAL or an empty group). The
/// group row is locked first, so concurrent assignments to one group pick one after another.
async fn pick(
    conn: &mut Conn,
    tenant: Uuid,
    group: Uuid,
) -> Result<(String, Option<Uuid>), ApiError> {
    // Active members only; ROUND_ROBIN: the one whose last task from this group is oldest
    // (never first); LOAD_BALANCED: the one with the fewest open tasks; ties by joining order.
    let mut b = SqlBuilder::new(
        "WITH g AS (SELECT \"id\", \"assignment_strategy\"::text AS strategy FROM \"groups\" WHERE \"tenant_id\" = ",
    );
    bound(&mut b, Value::Uuid(tenant), ColumnType::Uuid);
    b.push(" AND \"id\" = ");
    bound(&mut b, Value::Uuid(group), ColumnType::Uuid);
    b.push(
        " FOR UPDATE) \
         SELECT g.strategy, (SELECT m.\"user_id\" FROM \"group_members\" m \
           JOIN \"users\" u ON u.\"tenant_id\" = m.\"tenant_id\" AND u.\"id\" = m.\"user_id\" AND u.\"status\" = 'ACTIVE' \
           WHERE m.\"tenant_id\" = ",
    );
    bound(&mut b, Value::Uuid(tenant), ColumnType::Uuid);
    b.push(
        " AND m.\"group_id\" = g.\"id\" AND g.strategy <> 'MANUAL' \
           ORDER BY \
             CASE WHEN g.strategy = 'LOAD_BALANCED' THEN (SELECT count(*) FROM \"tasks\" t WHERE t.\"tenant_id\" = m.\"tenant_id\" AND t.\"assigned_user_id\" = m.\"user_id\" AND t.\"status\" IN ('ASSIGNED', 'CLAIMED', 'ESCALATED')) END ASC, \
             CASE WHEN g.strategy = 'ROUND_ROBIN' THEN (SELECT max(t.\"created_at\") FROM \"tasks\" t WHERE t.\"tenant_id\" = m.\"tenant_id\" AND t.\"assigned_group_id\" = g.\"id\" AND t.\"assigned_user_id\" = m.\"user_id\") END ASC NULLS FIRST, \
             m.\"joined_at\", m.\"user_id\" LIMIT 1) AS user_id FROM g",
    );
    let picked: Option<Picked> = diesel_async::RunQueryDsl::get_result(b.into_query(), conn)
        .await
        .map(Some)
        .or_else(|e| match e {
            diesel::result::Error::NotFound => Ok(None),
            e => Err(ApiError::internal(format!("group pick: {e}"))),
        })?;
    let picked = picked.ok_or_else(|| ApiError::bad_input("assignTo.groupId", "no such group"))?;
    Ok((picked.strategy, picked.user_id))
}

#[derive(diesel::QueryableByName)]
struct Found {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    found: bool,
}

async fn exists(conn: &mut Conn, sql: &str, tenant: Uuid, ids: &[Uuid]) -> Result<bool, ApiError> {
    let mut b = SqlBuilder::new(sql);
    bound(&mut b, Value::Uuid(tenant), ColumnType::Uuid);
    for id in ids {
        b.push(", ");
        bound(&mut b, Value::Uuid(*id), ColumnType::Uuid);
    }
    b.push(")) AS found");
    let found: Found = diesel_async::RunQueryDsl::get_result(b.into_query(), conn)
        .await
        .map_err(|e| ApiError::internal(format!("lookup: {e}")))?;
    Ok(found.found)
}

/// Whether `user` is an active user of the tenant.
async fn active_user(conn: &mut Conn, tenant: Uuid, user: Uuid) -> Result<bool, ApiError> {
    exists(
        conn,
        "SELECT EXISTS (SELECT 1 FROM \"users\" WHERE \"status\" = 'ACTIVE' AND (\"tenant_id\", \"id\") = (",
        tenant,
        &[user],
    )
    .await
}

/// Whether `user` belongs to `group`.
async fn member(conn: &mut Conn, tenant: Uuid, group: Uuid, user: Uuid) -> Result<bool, ApiError> {
    exists(
        conn,
        "SELECT EXISTS (SELECT 1 FROM \"group_members\" WHERE (\"tenant_id\", \"group_id\", \"user_id\") = (",
        tenant,
        &[group, user],
    )
    .await
}

/// Whom a task goes to.
#[derive(Debug, Clone, Copy)]
enum Assignee {
    User(Uuid),
    Group(Uuid),
}

fn assignee(v: Option<&G>, at: &str) -> Result<Option<Assignee>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    let fields = input::object(v, at)?;
    let user = fields.get("userId").filter(|v| !matches!(v, G::Null));
    let group = fields.get("groupId").filter(|v| !matches!(v, G::Null));
    match (user, group) {
        (Some(u), None) => Ok(Some(Assignee::User(input::id_value(
            u,
            &format!("{at}.userId"),
        )?))),
        (None, Some(g)) => Ok(Some(Assignee::Group(input::id_value(
            g,
            &format!("{at}.groupId"),
        )?))),
        _ => Err(ApiError::bad_input(
            at,
            format!("{at} takes exactly one of userId and groupId"),
        )),
    }
}

/// The assignment of a task to `to`: its assigned user and group, status, and how it was
/// decided.
struct Assignment {
    user: Option<Uuid>,
    group: Option<Uuid>,
    status: &'static str,
    details: Json,
}

async fn assign(
    conn: &mut Conn,
    tenant: Uuid,
    to: Option<Assignee>,
) -> Result<Assignment, ApiError> {
    match to {
        None => Ok(Assignment {
            user: None,
            group: None,
            status: "CREATED",
            details: json!({}),
        }),
        Some(Assignee::User(u)) => {
            if !active_user(conn, tenant, u).await? {
                return Err(ApiError::bad_input(
                    "assignTo.userId",
                    "no active user with this id in your tenant",
                ));
            }
            Ok(Assignment {
                user: Some(u),
                group: None,
                status: "ASSIGNED",
                details: json!({ "userId": u }),
            })
        }
        Some(Assignee::Group(g)) => {
            let (strategy, user) = pick(conn, tenant, g).await?;
            Ok(Assignment {
                user,
                group: Some(g),
                status: if user.is_some() {
                    "ASSIGNED"
                } else {
                    "CREATED"
                },
                details: json!({ "groupId": g, "strategy": strategy, "userId": user }),
            })
        }
    }
}

fn admin(rc: &RequestContext) -> Result<(), ApiError> {
    if rc.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("only an admin may do this"))
    }
}

fn json_arg(v: &G, at: &str) -> Result<Json, ApiError> {
    let json = serde_json::to_value(v).map_err(|_| ApiError::bad_input(at, "not JSON"))?;
    if json.to_string().len() > MAX_FORM_BYTES {
        return Err(ApiError::limit_exceeded(format!(
            "{at} is larger than {MAX_FORM_BYTES} bytes"
        )));
    }
    input::json(json, "", at)
}

/// A JSON Schema that compiles, with no remote references (nothing is fetched).
fn schema_of(form_schema: &Json, at: &str) -> Result<Option<jsonschema::Validator>, ApiError> {
    match form_schema {
        Json::Object(o) if o.is_empty() => Ok(None),
        Json::Object(_) | Json::Bool(_) => jsonschema::validator_for(form_schema)
            .map(Some)
            .map_err(|e| ApiError::bad_input(at, format!("{at} is not a valid JSON Schema: {e}"))),
        _ => Err(ApiError::bad_input(
            at,
            format!("{at} must be a JSON Schema object"),
        )),
    }
}

/// Notifies the task's assignee that it was assigned to them.
async fn tell_assignee(
    conn: &mut Conn,
    tenant: Uuid,
    task: &Row,
    user: Option<Uuid>,
    by: Uuid,
    what: &str,
) -> Result<(), ApiError> {
    let meta = tasks()?;
    let Some(user) = user.filter(|u| *u != by) else {
        return Ok(());
    };
    let title = text(task, meta, "title").unwrap_or_default();
    notify(
        conn,
        tenant,
        &[Notice {
            user,
            kind: Kind::Info,
            title: format!("Task {what}: {title}"),
            message: format!("The task \"{title}\" was {what} to you."),
            data: Some(json!({ "taskId": task.id(), "event": what })),
        }],
    )
    .await
}

/// Runs `f` in a transaction as the caller and returns the task it yields.
async fn in_transaction<F>(
    ctx: &ResolverContext<'_>,
    f: F,
) -> Result<Option<FieldValue<'static>>, async_graphql::Error>
where
    F: for<'r> FnOnce(
            &'r mut Conn,
            RequestContext,
        ) -> futures::future::BoxFuture<'r, Result<Row, ApiError>>
        + Send
        + 'static,
{
    let row = super::write(ctx, f).await?;
    Ok(Some(FieldValue::owned_any(row)))
}

fn status_of(row: &Row) -> Result<String, ApiError> {
    Ok(text(row, tasks()?, "status").unwrap_or_default())
}

fn refuse_closed(row: &Row) -> Result<(), ApiError> {
    let status = status_of(row)?;
    if OPEN.contains(&status.as_str()) {
        Ok(())
    } else {
        Err(ApiError::Conflict {
            field: None,
            message: format!("the task is {status}"),
        })
    }
}

fn create_task() -> Field {
    Field::new("createTask", TypeRef::named_nn("Task"), |ctx| {
        FieldFuture::new(async move {
            let rc = caller(&ctx)?;
            admin(rc)?;
            let v = arg(&ctx, "input").ok_or_else(|| ApiError::bad_input("input", "input is required"))?;
            let fields = input::object(v, "input")?;
            let string = |name: &str, max: u32, required: bool| -> Result<Option<String>, ApiError> {
                match fields.get(name).filter(|v| !matches!(v, G::Null)) {
                    Some(G::String(s)) => input::text(s.clone(), "input", name, Some(u32::from(required)), Some(max)).map(Some),
                    Some(_) => Err(ApiError::bad_input(input::at("input", name), format!("input.{name} must be a string"))),
                    None if required => Err(ApiError::bad_input(input::at("input", name), format!("input.{name} is required"))),
                    None => Ok(None),
                }
            };
            let title = string("title", 255, true)?.unwrap_or_default();
            let description = string("description", 100_000, false)?;
            let workflow_id = string("workflowId", 255, false)?;
            let workflow_run_id = string("workflowRunId", 255, false)?;
            let form_schema = match fields.get("formSchema").filter(|v| !matches!(v, G::Null)) {
                Some(v) => json_arg(v, "input.formSchema")?,
                None => json!({}),
            };
            schema_of(&form_schema, "input.formSchema")?;
            let context = match fields.get("context").filter(|v| !matches!(v, G::Null)) {
                Some(v) => json_arg(v, "input.context")?,
                None => json!({}),
            };
            let deadline: Option<DateTime<Utc>> = match (
                fields.get("slaDeadline").filter(|v| !matches!(v, G::Null)),
                fields.get("slaMinutes").filter(|v| !matches!(v, G::Null)),
            ) {
                (Some(d), None) => Some(input::datetime_value(d, "input.slaDeadline")?),
                (None, Some(G::Number(n))) => {
                    let minutes = n.as_i64().filter(|m| (1..=525_600).contains(m)).ok_or_else(|| {
                        ApiError::bad_input("input.slaMinutes", "input.slaMinutes must be 1 to 525600")
                    })?;
                    Some(Utc::now() + chrono::Duration::minutes(minutes))
                }
                (None, None) => None,
                _ => {
                    return Err(ApiError::bad_input(
                        "input.slaDeadline",
                        "give slaDeadline or slaMinutes, not both",
                    )
                    .into())
                }
            };
            let to = assignee(fields.get("assignTo").filter(|v| !matches!(v, G::Null)), "input.assignTo")?;
            in_transaction(&ctx, move |conn, rc| {
                async move {
                    let meta = tasks()?;
                    let a = assign(conn, rc.tenant_id, to).await?;
                    let row = super::insert_row(
                        conn,
                        &rc,
                        meta,
                        vec![
                            ("title", Value::Text(title), ColumnType::Text),
                            ("description", Value::from(description), ColumnType::Text),
                            ("workflow_id", Value::from(workflow_id), ColumnType::Text),
                            ("workflow_run_id", Value::from(workflow_run_id), ColumnType::Text),
                            ("form_schema", Value::Json(form_schema), ColumnType::Json),
                            ("context", Value::Json(context), ColumnType::Json),
                            ("sla_deadline", deadline.map_or(Value::Null, Value::DateTime), ColumnType::DateTime),
                            ("assigned_user_id", a.user.map_or(Value::Null, Value::Uuid), ColumnType::Uuid),
                            ("assigned_group_id", a.group.map_or(Value::Null, Value::Uuid), ColumnType::Uuid),
                            ("status", Value::Text(a.status.to_string()), ColumnType::Enum("task_status")),
                        ],
                    )
                    .await?;
                    let me = Actor::User(rc.user_id);
                    history(conn, rc.tenant_id, row.id(), "created", me, json!({ "title": text(&row, meta, "title") })).await?;
                    if a.user.is_some() || a.group.is_some() {
                        history(conn, rc.tenant_id, row.id(), "assigned", me, a.details).await?;
                    }
                    tell_assignee(conn, rc.tenant_id, &row, a.user, rc.user_id, "assigned").await?;
                    Ok(row)
                }
                .boxed()
            })
            .await
        })
    })
    .argument(InputValue::new("input", TypeRef::named_nn("NewTaskInput")))
    .description(
        "Creates a task (admins only). `assignTo` a user (status ASSIGNED) or a group, whose\nstrategy picks a member (ROUND_ROBIN, LOAD_BALANCED; MANUAL leaves it to a claim by a\nmember); the assignee is notified and the history records both.",
    )
}

fn claim_task() -> Field {
    Field::new("claimTask", TypeRef::named_nn("Task"), |ctx| {
        FieldFuture::new(async move {
            let id = input::id(&id_arg(&ctx, "id"), "", "id")?;
            in_transaction(&ctx, move |conn, rc| {
                async move {
                    let meta = tasks()?;
                    let old = lock_task(conn, &rc, id).await?;
                    refuse_closed(&old)?;
                    if let Some(by) = uuid(&old, meta, "claimed_by_id") {
                        return Err(ApiError::Conflict {
                            field: None,
                            message: if by == rc.user_id {
                                "you have claimed this task already".into()
                            } else {
                                "another user has claimed this task".into()
                            },
                        });
                    }
                    let assigned = uuid(&old, meta, "assigned_user_id");
                    let group = uuid(&old, meta, "assigned_group_id");
                    let allowed = assigned == Some(rc.user_id)
                        || match group {
                            Some(g) => member(conn, rc.tenant_id, g, rc.user_id).await?,
                            None => false,
                        };
                    if !allowed {
                        return Err(ApiError::forbidden(
                            "only the assignee or a member of the task's group may claim it",
                        ));
                    }
                    let new = super::update_row(conn, &rc, tasks()?, &old, vec![
                            ("claimed_by_id", Value::Uuid(rc.user_id), ColumnType::Uuid),
                            ("status", Value::Text("CLAIMED".into()), ColumnType::Enum("task_status")),
                        ]).await?;
                    history(conn, rc.tenant_id, id, "claimed", Actor::User(rc.user_id), json!({})).await?;
                    Ok(new)
                }
                .boxed()
            })
            .await
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .description(
        "Claims an open task for the caller: its assignee or a member of its group. Of\nconcurrent claims one wins; the others get CONFLICT.",
    )
}

fn unclaim_task() -> Field {
    Field::new("unclaimTask", TypeRef::named_nn("Task"), |ctx| {
        FieldFuture::new(async move {
            let id = input::id(&id_arg(&ctx, "id"), "", "id")?;
            in_transaction(&ctx, move |conn, rc| {
                async move {
                    let meta = tasks()?;
                    let old = lock_task(conn, &rc, id).await?;
                    let claimant = uuid(&old, meta, "claimed_by_id");
                    if status_of(&old)? != "CLAIMED" || claimant.is_none() {
                        return Err(ApiError::Conflict {
                            field: None,
                            message: "the task is not claimed".into(),
                        });
                    }
                    if claimant != Some(rc.user_id) && rc.role != Role::Admin {
                        return Err(ApiError::forbidden(
                            "only the claimant or an admin may unclaim a task",
                        ));
                    }
                    let back = if uuid(&old, meta, "assigned_user_id").is_some() {
                        "ASSIGNED"
                    } else {
                        "CREATED"
                    };
                    let new = super::update_row(
                        conn,
                        &rc,
                        tasks()?,
                        &old,
                        vec![
                            ("claimed_by_id", Value::Null, ColumnType::Uuid),
                            (
                                "status",
                                Value::Text(back.into()),
                                ColumnType::Enum("task_status"),
                            ),
                        ],
                    )
                    .await?;
                    history(
                        conn,
                        rc.tenant_id,
                        id,
                        "unclaimed",
                        Actor::User(rc.user_id),
                        json!({ "claimedById": claimant }),
                    )
                    .await?;
                    Ok(new)
                }
                .boxed()
            })
            .await
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .description("Gives a claimed task back (its claimant or an admin).")
}

fn complete_task() -> Field {
    Field::new("completeTask", TypeRef::named_nn("Task"), |ctx| {
        FieldFuture::new(async move {
            let id = input::id(&id_arg(&ctx, "id"), "", "id")?;
            let data = match arg(&ctx, "formData") {
                Some(v) => json_arg(v, "formData")?,
                None => json!({}),
            };
            in_transaction(&ctx, move |conn, rc| {
                async move {
                    let meta = tasks()?;
                    let old = lock_task(conn, &rc, id).await?;
                    refuse_closed(&old)?;
                    let claimant = uuid(&old, meta, "claimed_by_id");
                    if claimant != Some(rc.user_id) && rc.role != Role::Admin {
                        return Err(ApiError::forbidden(
                            "only the user who claimed the task, or an admin, may complete it",
                        ));
                    }
                    let schema = match old.value(meta, "form_schema") {
                        Value::Json(j) => j,
                        _ => json!({}),
                    };
                    if let Some(validator) = schema_of(&schema, "formSchema")? {
                        let problems: Vec<String> = validator
                            .iter_errors(&data)
                            .take(10)
                            .map(|e| {
                                let at = e.instance_path().to_string();
                                if at.is_empty() {
                                    e.to_string()
                                } else {
                                    format!("{at}: {e}")
                                }
                            })
                            .collect();
                        if !problems.is_empty() {
                            return Err(ApiError::bad_input(
                                "formData",
                                format!("formData does not match the task's form: {}", problems.join("; ")),
                            ));
                        }
                    }
                    let new = super::update_row(conn, &rc, tasks()?, &old, vec![
                            ("form_data", Value::Json(data), ColumnType::Json),
                            ("status", Value::Text("COMPLETED".into()), ColumnType::Enum("task_status")),
                            ("completed_at", Value::DateTime(Utc::now()), ColumnType::DateTime),
                            ("completed_by_id", Value::Uuid(rc.user_id), ColumnType::Uuid),
                        ]).await?;
                    history(conn, rc.tenant_id, id, "completed", Actor::User(rc.user_id), json!({})).await?;
                    // The assignee hears of it when someone else completed their task.
                    let assignee = uuid(&old, meta, "assigned_user_id");
                    tell_assignee(conn, rc.tenant_id, &new, assignee, rc.user_id, "completed").await?;
                    Ok(new)
                }
                .boxed()
            })
            .await
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new("formData", TypeRef::named_nn("JSON")))
    .description(
        "Completes a task with its form data (the claimant, or an admin), validated against the\ntask's formSchema (a JSON Schema) when it has one.",
    )
}

fn reassign_task() -> Field {
    Field::new("reassignTask", TypeRef::named_nn("Task"), |ctx| {
        FieldFuture::new(async move {
            admin(caller(&ctx)?)?;
            let id = input::id(&id_arg(&ctx, "id"), "", "id")?;
            let to = assignee(arg(&ctx, "assignTo"), "assignTo")?
                .ok_or_else(|| ApiError::bad_input("assignTo", "assignTo is required"))?;
            in_transaction(&ctx, move |conn, rc| {
                async move {
                    let old = lock_task(conn, &rc, id).await?;
                    refuse_closed(&old)?;
                    let a = assign(conn, rc.tenant_id, Some(to)).await?;
                    let new = super::update_row(
                        conn,
                        &rc,
                        tasks()?,
                        &old,
                        vec![
                            (
                                "assigned_user_id",
                                a.user.map_or(Value::Null, Value::Uuid),
                                ColumnType::Uuid,
                            ),
                            (
                                "assigned_group_id",
                                a.group.map_or(Value::Null, Value::Uuid),
                                ColumnType::Uuid,
                            ),
                            ("claimed_by_id", Value::Null, ColumnType::Uuid),
                            (
                                "status",
                                Value::Text(a.status.into()),
                                ColumnType::Enum("task_status"),
                            ),
                        ],
                    )
                    .await?;
                    history(
                        conn,
                        rc.tenant_id,
                        id,
                        "reassigned",
                        Actor::User(rc.user_id),
                        a.details,
                    )
                    .await?;
                    tell_assignee(conn, rc.tenant_id, &new, a.user, rc.user_id, "assigned").await?;
                    Ok(new)
                }
                .boxed()
            })
            .await
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new(
        "assignTo",
        TypeRef::named_nn("TaskAssigneeInput"),
    ))
    .description("Assigns an open task anew (admins only); a claim on it ends.")
}

fn my_pending_tasks() -> Field {
    Field::new("myPendingTasks", TypeRef::named_nn_list_nn("Task"), |ctx| {
        FieldFuture::new(async move {
            let rc = caller(&ctx)?.clone();
            let first = int_arg(&ctx, "first").unwrap_or(50);
            if !(1..=200).contains(&first) {
                return Err(ApiError::bad_input("first", "first must be 1 to 200").into());
            }
            let meta = tasks()?;
            let mut b = SqlBuilder::new("SELECT ");
            b.select_list(meta);
            b.push(" FROM \"tasks\" t WHERE t.\"tenant_id\" = ");
            bound(&mut b, Value::Uuid(rc.tenant_id), ColumnType::Uuid);
            b.push(" AND t.\"status\" IN ('CREATED', 'ASSIGNED', 'CLAIMED', 'ESCALATED') AND (t.\"claimed_by_id\" = ");
            bound(&mut b, Value::Uuid(rc.user_id), ColumnType::Uuid);
            b.push(" OR (t.\"claimed_by_id\" IS NULL AND (t.\"assigned_user_id\" = ");
            bound(&mut b, Value::Uuid(rc.user_id), ColumnType::Uuid);
            b.push(
                " OR (t.\"assigned_user_id\" IS NULL AND t.\"assigned_group_id\" IN (SELECT m.\"group_id\" FROM \"group_members\" m WHERE m.\"tenant_id\" = t.\"tenant_id\" AND m.\"user_id\" = ",
            );
            bound(&mut b, Value::Uuid(rc.user_id), ColumnType::Uuid);
            b.push(")))))");
            b.push(" ORDER BY t.\"sla_deadline\" ASC NULLS LAST, t.\"created_at\", t.\"id\"");
            b.limit(i64::from(first));
            let rows: Vec<Row> = crate::graphql::crud::read(&ctx, meta.name, b).await?;
            Ok(Some(FieldValue::list(rows.into_iter().map(FieldValue::owned_any))))
        })
    })
    .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)))
    .description(
        "The caller's open tasks, soonest SLA deadline first: claimed by them, assigned to them,\nor waiting in one of their groups for a claim.",
    )
}

/// The fields and types of human tasks, as engine extensions.
pub fn extensions() -> Extensions {
    let assignee = InputObject::new("TaskAssigneeInput")
        .description("A user, or a group whose assignment strategy picks a member.")
        .field(InputValue::new("userId", TypeRef::named(TypeRef::ID)))
        .field(InputValue::new("groupId", TypeRef::named(TypeRef::ID)));
    let new_task = InputObject::new("NewTaskInput")
        .field(InputValue::new("title", TypeRef::named_nn(TypeRef::STRING)))
        .field(InputValue::new(
            "description",
            TypeRef::named(TypeRef::STRING),
        ))
        .field(
            InputValue::new("formSchema", TypeRef::named("JSON"))
                .description("A JSON Schema the form data must match; {} accepts any."),
        )
        .field(InputValue::new("context", TypeRef::named("JSON")))
        .field(InputValue::new(
            "workflowId",
            TypeRef::named(TypeRef::STRING),
        ))
        .field(InputValue::new(
            "workflowRunId",
            TypeRef::named(TypeRef::STRING),
        ))
        .field(InputValue::new("slaDeadline", TypeRef::named("DateTime")))
        .field(
            InputValue::new("slaMinutes", TypeRef::named(TypeRef::INT))
                .description("The SLA deadline as minutes from now."),
        )
        .field(InputValue::new(
            "assignTo",
            TypeRef::named("TaskAssigneeInput"),
        ));
    Extensions {
        types: vec![assignee.into(), new_task.into()],
        query: vec![my_pending_tasks()],
        mutation: vec![
            create_task(),
            claim_task(),
            unclaim_task(),
            complete_task(),
            reassign_task(),
        ],
        ..Extensions::default()
    }
}

#[derive(diesel::QueryableByName)]
struct Overdue {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    tenant_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// Escalates overdue open tasks, at most `batch` of them, in one transaction: status
/// ESCALATED (a SECURITY DEFINER function updates across tenants, skipping rows another
/// instance has locked), then per tenant their history, notifications and change events.
/// Each task is escalated once: the update only takes tasks not escalated yet. Returns how
/// many were escalated.
pub async fn sweep_overdue(db: &Db, batch: i32) -> Result<usize, ApiError> {
    db.transaction_in(Uuid::nil(), false, move |conn| {
        async move {
            let meta = tasks()?;
            let mut b = SqlBuilder::new("SELECT tenant_id, id FROM gateway_escalate_overdue_tasks(");
            bound(&mut b, Value::Int(batch), ColumnType::Int);
            b.push(")");
            let mut overdue: Vec<Overdue> = diesel_async::RunQueryDsl::load(b.into_query(), conn)
                .await
                .map_err(|e| ApiError::internal(format!("escalation: {e}")))?;
            overdue.sort_by_key(|o| (o.tenant_id, o.id));
            let count = overdue.len();
            let mut start = 0;
            while start < overdue.len() {
                let tenant = overdue[start].tenant_id;
                let end = overdue[start..]
                    .iter()
                    .position(|o| o.tenant_id != tenant)
                    .map_or(overdue.len(), |n| start + n);
                let ids: Vec<Uuid> = overdue[start..end].iter().map(|o| o.id).collect();
                start = end;
                crate::db::scope_to_tenant(conn, tenant)
                    .await
                    .map_err(|e| ApiError::internal(format!("escalation: {e}")))?;
                let mut b = SqlBuilder::new("SELECT ");
                b.select_list(meta);
                b.push(" FROM \"tasks\" t WHERE t.\"tenant_id\" = ");
                bound(&mut b, Value::Uuid(tenant), ColumnType::Uuid);
                b.push(" AND t.\"id\" = ANY(");
                b.bind(Value::UuidList(ids), ColumnType::Uuid, true);
                b.push(")");
                let rows = load_rows(conn, meta, b).await?;
                let mut notices = Vec::new();
                for row in &rows {
                    history(conn, tenant, row.id(), "escalated", Actor::System, json!({ "slaDeadline": match row.value(meta, "sla_deadline") { Value::DateTime(d) => json!(d), _ => Json::Null } })).await?;
                    let title = text(row, meta, "title").unwrap_or_default();
                    let people = [uuid(row, meta, "claimed_by_id"), uuid(row, meta, "assigned_user_id")];
                    let mut told: Vec<Uuid> = Vec::new();
                    for user in people.into_iter().flatten() {
                        if told.contains(&user) {
                            continue;
                        }
                        told.push(user);
                        notices.push(Notice {
                            user,
                            kind: Kind::Warning,
                            title: format!("Task escalated: {title}"),
                            message: format!("The task \"{title}\" passed its SLA deadline and was escalated."),
                            data: Some(json!({ "taskId": row.id(), "event": "escalated" })),
                        });
                    }
                }
                notify(conn, tenant, &notices).await?;
                let changes: Vec<Change> = rows
                    .iter()
                    .map(|r| Change {
                        id: r.id(),
                        old: None,
                        new: Some(r.to_json(meta)),
                    })
                    .collect();
                crate::live::outbox::record(conn, meta, tenant, crate::live::ChangeOp::Updated, &changes).await?;
            }
            Ok(count)
        }
        .boxed()
    })
    .await
}
