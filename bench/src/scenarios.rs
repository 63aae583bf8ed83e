//! The load scenarios. The read scenarios have the same query for the gateway and for the
//! PostGraphile peer: the same selections, order and page sizes, with fields aliased to the
//! same names so that the two answers compare leaf by leaf (`compare`). The mutation is the
//! gateway's only.

use serde_json::json;
use uuid::Uuid;

use crate::load::Scenario;
use crate::seed::TenantIds;

/// A read served by both servers.
pub struct Read {
    pub name: &'static str,
    /// The gateway's query; its one variable is `$id`.
    pub gateway: &'static str,
    /// PostGraphile's (Amber preset) query with the same shape. The Amber preset's `id` is the
    /// global object id: a table's own `id` column is `rowId`.
    pub peer: &'static str,
    /// The ids `$id` takes, per tenant.
    pub ids: fn(&TenantIds) -> &[Uuid],
}

/// Ids per tenant a scenario picks from.
const TAKE: usize = 200;

pub const READS: &[Read] = &[
    Read {
        name: "thread by id",
        gateway: "query($id: ID!) { thread: forumThread(id: $id) { id title slug createdAt } }",
        peer: "query($id: UUID!) { thread: forumThreadByRowId(rowId: $id) { id: rowId title slug createdAt } }",
        ids: |i| &i.threads,
    },
    Read {
        name: "category > 20 threads (by id) > 10 posts (by id) > author name",
        gateway: "query($id: ID!) { category: forumCategory(id: $id) { name \
            threads: threads(first: 20, orderBy: [{id: ASC}]) { nodes { title \
            posts: posts(first: 10, orderBy: [{id: ASC}]) { nodes { content \
            author: author { name } } } } } } }",
        peer: "query($id: UUID!) { category: forumCategoryByRowId(rowId: $id) { name \
            threads: forumThreadsByTenantIdAndCategoryId(first: 20, orderBy: PRIMARY_KEY_ASC) { nodes { title \
            posts: forumPostsByTenantIdAndThreadId(first: 10, orderBy: PRIMARY_KEY_ASC) { nodes { content \
            author: userByTenantIdAndAuthorId { name } } } } } } }",
        ids: |i| &i.categories,
    },
    Read {
        name: "workflow > 10 executions (by id) > node executions (by id)",
        gateway: "query($id: ID!) { workflow: workflow(id: $id) { name \
            executions: executions(first: 10, orderBy: [{id: ASC}]) { nodes { status \
            nodeExecutions: nodeExecutions(orderBy: [{id: ASC}]) { nodes { nodeId status } } } } } }",
        peer: "query($id: UUID!) { workflow: workflowByRowId(rowId: $id) { name \
            executions: workflowExecutionsByTenantIdAndWorkflowId(first: 10, orderBy: PRIMARY_KEY_ASC) { nodes { status \
            nodeExecutions: nodeExecutionsByTenantIdAndExecutionId(orderBy: PRIMARY_KEY_ASC) { nodes { nodeId status } } } } } }",
        ids: |i| &i.workflows,
    },
    Read {
        name: "a user's unread notifications, 20 by id desc, totalCount",
        gateway: "query($id: ID!) { notifications: notifications(where: {userId: {equals: $id}, \
            read: {equals: false}}, orderBy: [{id: DESC}], first: 20) { totalCount \
            pageInfo { hasNextPage } nodes { id title createdAt } } }",
        peer: "query($id: UUID!) { notifications: allNotifications(condition: {userId: $id, \
            read: false}, orderBy: PRIMARY_KEY_DESC, first: 20) { totalCount \
            pageInfo { hasNextPage } nodes { id: rowId title createdAt } } }",
        ids: |i| &i.users,
    },
];

fn body(query: &str, id: &Uuid) -> String {
    json!({ "query": query, "variables": { "id": id } }).to_string()
}

impl Read {
    /// The wrk scenario for one server: per tenant, its token and one body per id.
    pub fn load(&self, query: &str, tokens: &[String], ids: &[TenantIds]) -> Scenario {
        Scenario {
            name: self.name.to_string(),
            tenants: tokens
                .iter()
                .zip(ids)
                .map(|(t, i)| {
                    let bodies = (self.ids)(i).iter().take(TAKE).map(|id| body(query, id));
                    (t.clone(), bodies.collect())
                })
                .collect(),
        }
    }

    /// `per_tenant` samples per tenant, spread over its ids: (tenant index, id).
    pub fn sample(&self, ids: &[TenantIds], per_tenant: usize) -> Vec<(usize, Uuid)> {
        let mut out = Vec::new();
        for (t, i) in ids.iter().enumerate() {
            let all = (self.ids)(i);
            let pool = &all[..all.len().min(TAKE)];
            let step = (pool.len() / per_tenant.max(1)).max(1);
            out.extend(
                pool.iter()
                    .step_by(step)
                    .take(per_tenant)
                    .map(|id| (t, *id)),
            );
        }
        out
    }

    pub fn gateway_body(&self, id: &Uuid) -> String {
        body(self.gateway, id)
    }

    pub fn peer_body(&self, id: &Uuid) -> String {
        body(self.peer, id)
    }
}

/// The gateway-only scenario: a post created by the caller (the tenant's admin token).
pub fn create_mutation(tokens: &[String], ids: &[TenantIds]) -> Scenario {
    let query = "mutation($t: ID!) { createForumPost(input: {threadId: $t, content: \"benchmark post\"}) { id createdAt } }";
    Scenario {
        name: "create mutation".to_string(),
        tenants: tokens
            .iter()
            .zip(ids)
            .map(|(t, i)| {
                let bodies = i.threads.iter().take(TAKE).map(|thread| {
                    json!({ "query": query, "variables": { "t": thread } }).to_string()
                });
                (t.clone(), bodies.collect())
            })
            .collect(),
    }
}

/// The gateway-only dashboard: three grouped aggregates over the standard data set in one
/// request (threads per category with the category's name, executions per status, a
/// user's notifications per day and read state).
pub const DASHBOARD: &str = "query { \
    threads: forumThreadsGroups(by: [CATEGORY_ID], orderBy: [{count: DESC}], first: 10) { \
      nodes { key { category { name } } count max { createdAt } } } \
    executions: workflowExecutionsGroups(by: [STATUS]) { nodes { key { status } count min { startedAt } } } \
    notifications: notificationsGroups(by: [CREATED_AT, READ], dateBucket: DAY, timeZone: \"Europe/Paris\", \
      orderBy: [{createdAt: DESC}], first: 14) { nodes { key { createdAt read } count } } }";

pub fn dashboard(tokens: &[String]) -> Scenario {
    let body = json!({ "query": DASHBOARD }).to_string();
    Scenario {
        name: "dashboard".to_string(),
        tenants: tokens
            .iter()
            .map(|t| (t.clone(), vec![body.clone()]))
            .collect(),
    }
}
